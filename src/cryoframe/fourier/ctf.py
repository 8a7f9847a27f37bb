"""Contrast transfer function of the electron microscope (weak-phase approximation).

Convention (defocus and astigmatism exactly as RELION/CTFFIND; overall sign physical)::

    Δf(φ) = (U + V)/2 + (U − V)/2 · cos 2(φ − angle)        positive Δf = underfocus
    χ(k)  = π λ Δf k² − (π/2) Cs λ³ k⁴ + phase_shift + arcsin(Q)
    CTF(k) = −sin χ(k) · exp(−B k² / 4)

with ``k`` in 1/Å, ``φ = atan2(k_y, k_x)`` measured from the x axis towards y, ``Q`` the
amplitude contrast (``arcsin Q = atan(Q/√(1−Q²))``) and ``λ`` the relativistic electron
wavelength. ``CTF(0) = −Q`` and the CTF stays negative up to the first zero for underfocus:
positive protein density images dark, as in raw micrographs.

RELION's ``CTF::getCTF`` returns the opposite overall sign (``+sin χ``) because RELION works
with contrast-inverted particles (protein white); to reproduce RELION's values use
``-ctf_2d(...)``. All defocus, astigmatism, Cs, amplitude-contrast, phase-shift and B-factor
definitions are RELION's (B enters as ``exp(−B k²/4)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.grids import fftfreq_grid

__all__ = ["electron_wavelength_angstrom", "ctf_2d", "apply_ctf_2d", "phase_flip_2d",
           "first_zero_cycles_per_angstrom"]

_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m/s


def electron_wavelength_angstrom(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å (300 kV → 0.019687 Å, 200 kV → 0.025079 Å).

    Parameters
    ----------
    voltage_kv : float
        Acceleration voltage in kV.

    Returns
    -------
    float
        ``h / √(2 m₀ e V (1 + e V / (2 m₀ c²)))`` in Å.
    """
    if not voltage_kv > 0:
        raise InputError(f"invalid voltage {voltage_kv}", field="voltage_kv", expected="> 0 kV")
    v = voltage_kv * 1e3
    p = math.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return _H / p * 1e10


def ctf_2d(
    shape_yx: Sequence[int],
    pixel_size_angstrom: float,
    defocus_u_angstrom: Tensor | float,
    defocus_v_angstrom: Tensor | float | None = None,
    defocus_angle_deg: Tensor | float = 0.0,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.1,
    b_factor_angstrom2: Tensor | float = 0.0,
    phase_shift_deg: Tensor | float = 0.0,
    rfft: bool = False,
    fftshift: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """2D CTF on the Fourier grid of an image of shape ``shape_yx``.

    Parameters
    ----------
    shape_yx : sequence of int
        Real-space image shape ``(h, w)``.
    pixel_size_angstrom : float
        Pixel size in Å.
    defocus_u_angstrom, defocus_v_angstrom : Tensor or float
        `(...)` defoci in Å, positive = underfocus; V defaults to U (no astigmatism).
    defocus_angle_deg : Tensor or float
        `(...)` azimuth of the U axis from x towards y, degrees.
    voltage_kv, cs_mm, amplitude_contrast : float
        Microscope constants (kV, mm, fraction in [0, 1)).
    b_factor_angstrom2 : Tensor or float
        `(...)` envelope B-factor in Å², applied as ``exp(−B k²/4)``.
    phase_shift_deg : Tensor or float
        `(...)` extra phase shift (phase plate), degrees.
    rfft : bool
        Half spectrum `(h, w // 2 + 1)` matching ``torch.fft.rfft2``.
    fftshift : bool
        DC at ``(h // 2, w // 2)`` (full spectrum only).
    dtype, device
        Output dtype and device.

    Returns
    -------
    Tensor
        `(..., h, w)` or `(..., h, w // 2 + 1)` CTF values in ``[−1, 1]``, where ``...`` is the
        broadcast shape of the per-image parameters.
    """
    if len(tuple(shape_yx)) != 2:
        raise InputError(f"shape_yx must be (h, w), got {tuple(shape_yx)}", field="shape_yx",
                         expected="two positive ints")
    if not pixel_size_angstrom > 0:
        raise InputError(f"invalid pixel size {pixel_size_angstrom}", field="pixel_size_angstrom",
                         expected="> 0 Å")
    if not 0 <= amplitude_contrast < 1:
        raise InputError(f"invalid amplitude contrast {amplitude_contrast}",
                         field="amplitude_contrast", expected="0 <= Q < 1")
    lam = electron_wavelength_angstrom(voltage_kv)
    if defocus_v_angstrom is None:
        defocus_v_angstrom = defocus_u_angstrom
    params = [as_float_tensor(p).to(torch.float64) for p in
              (defocus_u_angstrom, defocus_v_angstrom, defocus_angle_deg, b_factor_angstrom2,
               phase_shift_deg)]
    du, dv, ang, bfac, ps = (p[..., None, None] for p in torch.broadcast_tensors(*params))
    k = fftfreq_grid(shape_yx, rfft=rfft, fftshift=fftshift and not rfft,
                     dtype=torch.float64) / pixel_size_angstrom  # (h, w', 2) in 1/Å
    k2 = (k**2).sum(-1)
    phi = torch.atan2(k[..., 0], k[..., 1])
    defocus = (du + dv) / 2 + (du - dv) / 2 * torch.cos(2 * (phi - torch.deg2rad(ang)))
    cs = cs_mm * 1e7
    chi = (math.pi * lam * defocus * k2 - math.pi / 2 * cs * lam**3 * k2**2
           + torch.deg2rad(ps) + math.asin(amplitude_contrast))
    ctf = -torch.sin(chi) * torch.exp(-bfac * k2 / 4)
    return ctf.to(dtype=dtype, device=device)


def first_zero_cycles_per_angstrom(
    defocus_angstrom: float, voltage_kv: float = 300.0, cs_mm: float = 2.7,
    amplitude_contrast: float = 0.1, phase_shift_deg: float = 0.0,
) -> float:
    """Spatial frequency (1/Å) of the first CTF zero for an isotropic defocus.

    Solves ``χ(k) = π`` for ``k`` (positive root of the quadratic in ``k²``).

    Parameters
    ----------
    defocus_angstrom : float
        Underfocus in Å (> 0).
    voltage_kv, cs_mm, amplitude_contrast, phase_shift_deg : float
        As in :func:`ctf_2d`.

    Returns
    -------
    float
        First-zero frequency in 1/Å.
    """
    lam = electron_wavelength_angstrom(voltage_kv)
    a = math.pi / 2 * cs_mm * 1e7 * lam**3
    b = math.pi * lam * defocus_angstrom
    c = math.pi - math.radians(phase_shift_deg) - math.asin(amplitude_contrast)
    if a == 0:
        return math.sqrt(c / b)
    # a x² − b x + c = 0 with x = k²; smallest positive root
    disc = b * b - 4 * a * c
    if disc < 0:
        raise InputError("no CTF zero for these parameters", field="defocus_angstrom",
                         expected="a larger underfocus")
    x = (b - math.sqrt(disc)) / (2 * a)
    return math.sqrt(x)


def _as_rfft_filter(filt: Tensor, shape: tuple[int, int]) -> Tensor:
    h, w = shape
    if filt.shape[-2:] == (h, w // 2 + 1):
        return filt
    if filt.shape[-2:] == (h, w):
        return filt[..., : w // 2 + 1]
    raise InputError(f"CTF shape {tuple(filt.shape[-2:])} does not match images {shape}",
                     field="ctf", expected=f"(..., {h}, {w}) or (..., {h}, {w // 2 + 1}), "
                     "not fftshifted")


def apply_ctf_2d(images: Tensor, ctf: Tensor) -> Tensor:
    """Multiply the Fourier transform of images by a CTF and return real images.

    Parameters
    ----------
    images : Tensor
        `(..., h, w)` real images.
    ctf : Tensor
        `(..., h, w // 2 + 1)` (rfft) or `(..., h, w)` (full, not fftshifted), broadcast
        against the leading dims of ``images``.

    Returns
    -------
    Tensor
        `(..., h, w)` images convolved with the point-spread function.
    """
    x = as_float_tensor(images)
    if x.dim() < 2:
        raise InputError("images must be (..., h, w)", field="images", expected="(..., h, w)")
    shape = (x.shape[-2], x.shape[-1])
    c = _as_rfft_filter(as_float_tensor(ctf).to(device=x.device), shape)
    spec = torch.fft.rfft2(x) * c.to(x.dtype)
    return torch.fft.irfft2(spec, s=shape)


def phase_flip_2d(images: Tensor, ctf: Tensor) -> Tensor:
    """Phase-flip images: multiply their spectrum by ``sign(CTF)``.

    With the physical CTF sign used here this also inverts the low-frequency contrast, so
    protein becomes white (RELION's particle convention).

    Parameters
    ----------
    images : Tensor
        `(..., h, w)` real images.
    ctf : Tensor
        CTF as accepted by :func:`apply_ctf_2d`.

    Returns
    -------
    Tensor
        `(..., h, w)` phase-flipped images.
    """
    return apply_ctf_2d(images, torch.sign(as_float_tensor(ctf)))
