"""Fourier shell correlation, resolution at a threshold, conical FSCs and cFAR.

FSC of shell ``s`` (frequencies with ``round(|k| n) = s``, ``k`` in cycles/px, ``n`` the box)::

    FSC(s) = Σ Re(F₁ F₂*) / √(Σ|F₁|² · Σ|F₂|²)

Sums run over the full spectrum (computed from the rfft half with Hermitian weights). Shell
frequencies are ``s / n`` for ``s = 0 … n // 2`` (corners beyond Nyquist are dropped).

Resolution: the first shell ``s ≥ 1`` where the curve drops below the threshold; the crossing
frequency is interpolated linearly between shells ``s − 1`` and ``s``, and resolution is
``pixel_size / f``. If the curve never drops below the threshold the map is
**Nyquist-limited**: :func:`fsc_crossing` says so and :func:`resolution_at` returns the
Nyquist resolution ``2 × pixel_size`` as an upper bound on the true figure.

cFAR (conical FSC area ratio, after cryoSPARC's Orientation Diagnostics job, v4.4+,
https://guide.cryosparc.com/processing-data/all-job-types-in-cryosparc/utilities/job-orientation-diagnostics:
conical FSCs of the half maps over many cone axes, the area under each up to the global FSC
resolution, their ratio in [0, 1], < 0.5 flags preferred orientation)::

    area_d = Σ_{s₀ ≤ s ≤ s*} max(cFSC_d(s), 0) / n          for each cone axis d
    cFAR   = min_d area_d / mean_d area_d                     ∈ [0, 1]

where ``cFSC_d`` is the FSC restricted to a cone of half-angle ``half_angle_deg`` about ``±d``
(Friedel symmetry), the axes are Fibonacci points on a hemisphere, ``s*`` is the shell where
the global FSC crosses the threshold (Nyquist if it never does) and ``s₀`` the first shell
where every cone holds at least ``min_cone_voxels`` voxels (both Friedel mates counted; 4 by
default): a 20° cone holds about ``0.76 s²`` voxels of shell ``s``, none at all for some axes
at ``s = 1``, and such a shell would give those axes a zero it did not measure. cFAR is 1 for
perfectly isotropic half maps and approaches 0 when some direction carries no signal.
Defaults (20° cones, 0.143) follow that description. This is our implementation of the
published description, not a bit-for-bit copy of cryoSPARC; values agree in meaning (1 =
isotropic, < 0.5 anisotropic), not necessarily to the digit.

**Real-space crops and masks fill empty cones.** A mask (or the crop of a padded
reconstruction to its box) multiplies the map in real space, which convolves its spectrum:
a cone that no view measured then holds leakage of the strong low-frequency data, identical
in both halves, and its conical FSC reads close to 1. Measured on reconstructions from views
all within 20° of one axis (box 64, 800 particles, true poses): cFAR 0.71 from the masked
half maps, 0.51 unmasked, 0.00 from the Fourier estimates before the crop. Reconstructions
therefore report :func:`cfar_spectra` of those estimates
(:func:`cryoframe.recon.halves.finish_half_maps`); :func:`cfar` of half maps read from files
is an upper bound when their reconstruction left cones unmeasured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.grids import fftfreq_grid
from cryoframe.geometry.rotations import fibonacci_sphere

__all__ = [
    "fsc",
    "fsc_crossing",
    "resolution_at",
    "conical_fsc",
    "cfar",
    "cfar_spectra",
    "CFARResult",
]


def _prepare(a: object, b: object, mask: object | None) -> tuple[Tensor, Tensor]:
    x, y = as_float_tensor(a).to(torch.float64), as_float_tensor(b).to(torch.float64)
    if x.shape != y.shape:
        raise InputError(f"maps differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}",
                         field="half2", expected=f"shape {tuple(x.shape)}")
    if x.dim() not in (2, 3) or len(set(x.shape)) != 1:
        raise InputError(f"FSC needs a cubic volume or square image, got {tuple(x.shape)}",
                         field="half1", expected="(n, n, n) or (n, n)")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise InputError("maps contain NaN or inf", field="half1", expected="finite values")
    if mask is not None:
        m = as_float_tensor(mask).to(torch.float64)
        if m.shape != x.shape:
            raise InputError(f"mask shape {tuple(m.shape)} differs from map {tuple(x.shape)}",
                             field="mask", expected=f"shape {tuple(x.shape)}")
        x, y = x * m, y * m
    return x, y


def _spectra(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Rfft products, Hermitian weights and frequency vectors."""
    n = x.shape[-1]
    fx, fy = torch.fft.rfftn(x), torch.fft.rfftn(y)
    k = fftfreq_grid(x.shape, rfft=True, dtype=torch.float64, device=x.device)  # (..., nd)
    w = torch.full(fx.shape, 2.0, dtype=torch.float64, device=x.device)
    w[..., 0] = 1.0
    if n % 2 == 0:
        w[..., -1] = 1.0
    cross = (fx * fy.conj()).real * w
    p1, p2 = fx.abs() ** 2 * w, fy.abs() ** 2 * w
    return cross, torch.stack([p1, p2]), k, w, n


def _shell_sums(values: Tensor, shells: Tensor, n_shells: int) -> Tensor:
    keep = shells < n_shells
    out = torch.zeros(values.shape[0], n_shells, dtype=torch.float64, device=values.device)
    return out.index_add_(1, shells[keep], values[:, keep])


def fsc(a: object, b: object, mask: object | None = None) -> tuple[Tensor, Tensor]:
    """Fourier shell (or ring) correlation of two cubic volumes or square images.

    Parameters
    ----------
    a, b : array-like
        `(n, n, n)` or `(n, n)` real maps on the same grid.
    mask : array-like, optional
        Real-space mask multiplied into both maps first.

    Returns
    -------
    freq_cycles_per_px : Tensor
        `(n // 2 + 1,)` shell frequencies ``s / n``.
    fsc : Tensor
        `(n // 2 + 1,)` correlations in ``[−1, 1]`` (float64, CPU); shell 0 is the DC term.
    """
    x, y = _prepare(a, b, mask)
    cross, powers, k, _, n = _spectra(x, y)
    freq, curve = _shell_fsc(cross, powers, k, n)
    return freq, curve.cpu()


def _shell_fsc(cross: Tensor, powers: Tensor, k: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Shell frequencies `(n // 2 + 1,)` (cycles/pixel) and the FSC of shell-summed products."""
    shells = torch.round(torch.linalg.norm(k, dim=-1) * n).long().flatten()
    n_shells = n // 2 + 1
    sums = _shell_sums(torch.cat([cross.flatten()[None], powers.flatten(1)]), shells, n_shells)
    denom = torch.sqrt(sums[1] * sums[2])
    curve = torch.where(denom > 0, sums[0] / denom.clamp_min(1e-300), torch.zeros_like(denom))
    return torch.arange(n_shells, dtype=torch.float64) / n, curve


def fsc_crossing(freq: object, curve: object, threshold: float = 0.143) -> tuple[float, bool]:
    """Frequency where an FSC curve first drops below ``threshold``.

    Parameters
    ----------
    freq : array-like
        `(S,)` shell frequencies in cycles/px (or 1/Å).
    curve : array-like
        `(S,)` FSC values.
    threshold : float
        FSC threshold (0.143 for half maps, 0.5 against a known truth).

    Returns
    -------
    frequency : float
        Linearly interpolated crossing, or the last frequency if the curve never crosses.
    crossed : bool
        False when the curve stays at or above the threshold up to the last shell
        (Nyquist-limited).
    """
    f = as_float_tensor(freq).to(torch.float64).flatten()
    c = as_float_tensor(curve).to(torch.float64).flatten()
    if f.numel() != c.numel() or f.numel() < 2:
        raise InputError("frequency and FSC arrays must match and hold >= 2 shells",
                         field="curve", expected="two arrays of equal length >= 2")
    below = torch.nonzero(c[1:] < threshold).flatten()
    if below.numel() == 0:
        return float(f[-1]), False
    i = int(below[0]) + 1
    c0, c1 = float(c[i - 1]), float(c[i])
    t = 0.0 if c0 == c1 else (c0 - threshold) / (c0 - c1)
    t = min(max(t, 0.0), 1.0)
    return float(f[i - 1] + t * (f[i] - f[i - 1])), True


def resolution_at(
    freq: object, curve: object, threshold: float = 0.143, pixel_size_angstrom: float = 1.0
) -> float:
    """Resolution in Å where an FSC curve (frequencies in cycles/px) crosses ``threshold``.

    Parameters
    ----------
    freq : array-like
        `(S,)` shell frequencies in cycles/px.
    curve : array-like
        `(S,)` FSC values.
    threshold : float
        FSC threshold.
    pixel_size_angstrom : float
        Pixel size in Å.

    Returns
    -------
    float
        ``pixel_size / f_cross`` in Å. When the curve never crosses, the Nyquist-limited bound
        ``pixel_size / f_last`` (use :func:`fsc_crossing` to tell the cases apart).
    """
    if not pixel_size_angstrom > 0:
        raise InputError(f"invalid pixel size {pixel_size_angstrom}", field="pixel_size_angstrom",
                         expected="> 0 Å")
    f, _ = fsc_crossing(freq, curve, threshold)
    return math.inf if f <= 0 else pixel_size_angstrom / f


def _cone_sums(cross: Tensor, powers: Tensor, wts: Tensor, k: Tensor, n: int, d: Tensor,
               half_angle_deg: float) -> tuple[Tensor, Tensor]:
    """Per-cone shell sums of ``cross`` and ``powers`` and per-cone shell voxel counts."""
    kf = k.reshape(-1, 3)
    kr = torch.linalg.norm(kf, dim=-1)
    shells = torch.round(kr * n).long()
    n_shells = n // 2 + 1
    values = torch.cat([cross.flatten()[None], powers.flatten(1), wts.flatten()[None]])  # (4, N)
    cos_lim = math.cos(math.radians(half_angle_deg))
    unit = kf / kr.clamp_min(1e-12)[:, None]
    curves = torch.zeros(d.shape[0], n_shells, dtype=torch.float64, device=cross.device)
    counts = torch.zeros(d.shape[0], n_shells, dtype=torch.float64, device=cross.device)
    for i in range(d.shape[0]):
        inside = ((unit @ d[i]).abs() >= cos_lim) | (kr == 0)
        sums = _shell_sums(values[:, inside], shells[inside], n_shells)
        denom = torch.sqrt(sums[1] * sums[2])
        curves[i] = torch.where(denom > 0, sums[0] / denom.clamp_min(1e-300),
                                torch.zeros_like(denom))
        counts[i] = sums[3]
    return curves, counts


def _axes(directions_zyx: object | None, n_directions: int, device: torch.device) -> Tensor:
    d = (fibonacci_sphere(n_directions, hemisphere=True) if directions_zyx is None
         else as_float_tensor(directions_zyx).to(torch.float64).reshape(-1, 3))
    return (d / torch.linalg.norm(d, dim=-1, keepdim=True)).to(device)


def _check_angle(half_angle_deg: float) -> None:
    if not 0 < half_angle_deg <= 90:
        raise InputError(f"invalid cone half-angle {half_angle_deg}", field="half_angle_deg",
                         expected="0 < angle <= 90 degrees")


def conical_fsc(
    a: object,
    b: object,
    directions_zyx: object | None = None,
    half_angle_deg: float = 20.0,
    mask: object | None = None,
    n_directions: int = 100,
) -> tuple[Tensor, Tensor, Tensor]:
    """FSC restricted to cones of frequencies around given axes (both ``±d``).

    Parameters
    ----------
    a, b : array-like
        `(n, n, n)` real half maps.
    directions_zyx : array-like, optional
        `(M, 3)` cone axes (normalised internally); default ``n_directions`` Fibonacci points
        on the ``z ≥ 0`` hemisphere.
    half_angle_deg : float
        Cone half-angle in degrees.
    mask : array-like, optional
        Real-space mask.
    n_directions : int
        Number of default axes.

    Returns
    -------
    freq_cycles_per_px : Tensor
        `(n // 2 + 1,)`.
    directions_zyx : Tensor
        `(M, 3)` unit axes used.
    cfsc : Tensor
        `(M, n // 2 + 1)` conical FSC curves (0 where a cone holds no voxel of the shell).
    """
    x, y = _prepare(a, b, mask)
    if x.dim() != 3:
        raise InputError("conical FSC needs volumes", field="half1", expected="(n, n, n)")
    _check_angle(half_angle_deg)
    d = _axes(directions_zyx, n_directions, x.device)
    cross, powers, k, w, n = _spectra(x, y)
    curves, _ = _cone_sums(cross, powers, w, k, n, d, half_angle_deg)
    return torch.arange(n // 2 + 1, dtype=torch.float64) / n, d.cpu(), curves.cpu()


@dataclass(frozen=True)
class CFARResult:
    """cFAR and the quantities it was computed from.

    Attributes
    ----------
    cfar : float
        ``min_d area_d / mean_d area_d`` in ``[0, 1]``.
    areas : Tensor
        `(M,)` areas under the clipped conical FSCs (cycles/px).
    directions_zyx : Tensor
        `(M, 3)` cone axes.
    max_freq_cycles_per_px : float
        Upper integration limit (global FSC crossing, or Nyquist).
    nyquist_limited : bool
        True when the global FSC never crossed the threshold.
    min_shell : int
        First shell integrated (every cone holds at least ``min_cone_voxels`` voxels there).
    curves : Tensor
        `(M, n // 2 + 1)` conical FSC curves.
    """

    cfar: float
    areas: Tensor
    directions_zyx: Tensor
    max_freq_cycles_per_px: float
    nyquist_limited: bool
    min_shell: int = 1
    curves: Tensor | None = None


def _cfar_from_products(cross: Tensor, powers: Tensor, w: Tensor, k: Tensor, n: int,
                        threshold: float, half_angle_deg: float, n_directions: int,
                        min_cone_voxels: int) -> CFARResult:
    _check_angle(half_angle_deg)
    freq, glob = _shell_fsc(cross, powers, k, n)
    f_max, crossed = fsc_crossing(freq, glob.cpu(), threshold)
    d = _axes(None, n_directions, cross.device)
    curves, counts = _cone_sums(cross, powers, w, k, n, d, half_angle_deg)
    s_max = max(1, int(math.floor(f_max * n + 1e-9)))
    enough = torch.nonzero(counts.min(0).values[1:] >= min_cone_voxels).flatten()
    s_min = min(s_max, int(enough[0]) + 1 if enough.numel() else s_max)
    areas = curves[:, s_min: s_max + 1].clamp_min(0).sum(-1).cpu() / n
    mean = float(areas.mean())
    value = 0.0 if mean <= 0 else min(1.0, max(0.0, float(areas.min()) / mean))
    return CFARResult(value, areas, d.cpu(), f_max, not crossed, s_min, curves.cpu())


def cfar(
    half1: object,
    half2: object,
    threshold: float = 0.143,
    half_angle_deg: float = 20.0,
    n_directions: int = 100,
    mask: object | None = None,
    min_cone_voxels: int = 4,
) -> CFARResult:
    """Conical FSC area ratio of two half maps (formula in the module docstring).

    Parameters
    ----------
    half1, half2 : array-like
        `(n, n, n)` independent half maps.
    threshold : float
        Global FSC threshold that fixes the integration limit.
    half_angle_deg : float
        Cone half-angle in degrees.
    n_directions : int
        Number of cone axes on the hemisphere.
    mask : array-like, optional
        Real-space mask (it spreads each Fourier voxel over its neighbours, so a masked
        cFAR fills empty cones; see the module docstring).
    min_cone_voxels : int
        Shells where some cone holds fewer voxels (both Friedel mates counted) are left out
        of every area.

    Returns
    -------
    CFARResult
        ``.cfar`` in ``[0, 1]`` plus per-direction areas.
    """
    x, y = _prepare(half1, half2, mask)
    if x.dim() != 3:
        raise InputError("cFAR needs volumes", field="half1", expected="(n, n, n)")
    cross, powers, k, w, n = _spectra(x, y)
    return _cfar_from_products(cross, powers, w, k, n, threshold, half_angle_deg,
                               n_directions, min_cone_voxels)


def cfar_spectra(
    spec1: object,
    spec2: object,
    threshold: float = 0.143,
    half_angle_deg: float = 20.0,
    n_directions: int = 100,
    min_cone_voxels: int = 4,
) -> CFARResult:
    """Conical FSC area ratio from the half maps' Fourier coefficients, not the maps.

    Parameters
    ----------
    spec1, spec2 : array-like
        `(n, n, n // 2 + 1)` complex half-map spectra in ``torch.fft.rfftn`` layout (DC at
        index 0), e.g. the Wiener estimates of a reconstruction sampled on the map's Fourier
        grid before the real-space crop
        (:func:`cryoframe.recon.halves.finish_half_maps` uses this).
    threshold, half_angle_deg, n_directions, min_cone_voxels
        As in :func:`cfar`.

    Returns
    -------
    CFARResult
    """
    f1 = torch.as_tensor(spec1).to(torch.complex128)
    f2 = torch.as_tensor(spec2).to(torch.complex128)
    if f1.shape != f2.shape or f1.dim() != 3 or f1.shape[0] != f1.shape[1] \
            or f1.shape[2] != f1.shape[0] // 2 + 1 or f1.shape[0] % 2:
        raise InputError(f"spectra of shapes {tuple(f1.shape)} and {tuple(f2.shape)}",
                         field="spec1", expected="two (n, n, n // 2 + 1) rfft spectra, n even")
    if not (torch.isfinite(torch.view_as_real(f1)).all()
            and torch.isfinite(torch.view_as_real(f2)).all()):
        raise InputError("spectra contain NaN or inf", field="spec1", expected="finite values")
    n = f1.shape[0]
    k = fftfreq_grid((n, n, n), rfft=True, dtype=torch.float64, device=f1.device)
    w = torch.full(f1.shape, 2.0, dtype=torch.float64, device=f1.device)
    w[..., 0] = 1.0
    w[..., -1] = 1.0
    cross = (f1 * f2.conj()).real * w
    powers = torch.stack([f1.abs() ** 2 * w, f2.abs() ** 2 * w])
    return _cfar_from_products(cross, powers, w, k, n, threshold, half_angle_deg,
                               n_directions, min_cone_voxels)
