"""Fourier filters for images (2D) and volumes (3D): low-pass, Hann-tapered ramp, crop/pad.

All filters act on the trailing ``ndim`` axes. When ``ndim`` is not given it is 3 for inputs
with at least 3 dimensions and 2 otherwise, so pass ``ndim=2`` for a `(B, h, w)` image stack.
Frequencies are cycles/pixel; filters built here are rfft half spectra, not fftshifted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.grids import fftfreq_grid, radial_frequency

__all__ = [
    "apply_fourier_filter",
    "gaussian_lowpass",
    "lowpass",
    "soft_lowpass_filter",
    "hann_ramp_filter",
    "fourier_crop",
    "fourier_pad",
]


def _ndim(x: Tensor, ndim: int | None) -> int:
    nd = ndim if ndim is not None else (3 if x.dim() >= 3 else 2)
    if nd not in (2, 3) or x.dim() < nd:
        raise InputError(f"cannot filter a {tuple(x.shape)} array over {nd} axes", field="ndim",
                         expected="2 or 3 trailing spatial axes")
    return nd


def apply_fourier_filter(x: Tensor, filt: Tensor, ndim: int | None = None) -> Tensor:
    """Multiply the rfft of ``x`` over its last ``ndim`` axes by ``filt``.

    Parameters
    ----------
    x : Tensor
        `(..., *S)` real data.
    filt : Tensor
        rfft-shaped filter `(*S[:-1], S[-1] // 2 + 1)` (broadcastable), not fftshifted.
    ndim : int, optional
        Number of spatial axes (2 or 3).

    Returns
    -------
    Tensor
        Filtered real data, same shape as ``x``.
    """
    x = as_float_tensor(x)
    nd = _ndim(x, ndim)
    dims = tuple(range(-nd, 0))
    spec = torch.fft.rfftn(x, dim=dims) * filt.to(device=x.device, dtype=x.dtype)
    return torch.fft.irfftn(spec, s=x.shape[-nd:], dim=dims)


def gaussian_lowpass(
    x: Tensor, resolution_angstrom: float, pixel_size_angstrom: float, ndim: int | None = None
) -> Tensor:
    """Gaussian low-pass ``H(k) = exp(−k² / (2 σ²))`` with ``σ = 1 / resolution``.

    The amplitude is ``exp(−1/2) ≈ 0.61`` at the target resolution.

    Parameters
    ----------
    x : Tensor
        `(..., *S)` real images or volumes.
    resolution_angstrom : float
        Target resolution in Å.
    pixel_size_angstrom : float
        Pixel size in Å.
    ndim : int, optional
        Number of spatial axes.

    Returns
    -------
    Tensor
        Filtered data, same shape.
    """
    if not (resolution_angstrom > 0 and pixel_size_angstrom > 0):
        raise InputError("resolution and pixel size must be positive", field="resolution_angstrom",
                         expected="> 0 Å")
    x = as_float_tensor(x)
    nd = _ndim(x, ndim)
    k = radial_frequency(x.shape[-nd:], rfft=True, dtype=x.dtype, device=x.device)
    sigma = pixel_size_angstrom / resolution_angstrom  # cycles/px
    return apply_fourier_filter(x, torch.exp(-(k**2) / (2 * sigma**2)), nd)


def soft_lowpass_filter(
    shape: Sequence[int], cutoff_cycles_per_px: float, soft_width: float = 0.05,
    rfft: bool = True, dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Raised-cosine low-pass: 1 below ``cutoff − w/2``, 0 above ``cutoff + w/2``, 0.5 at cutoff.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape.
    cutoff_cycles_per_px : float
        Cut-off frequency (cycles/px, ≤ 0.5 for a real cut).
    soft_width : float
        Width ``w`` of the cosine edge in cycles/px (0 gives a hard edge).
    rfft : bool
        Half spectrum.
    dtype : torch.dtype
        Output dtype.

    Returns
    -------
    Tensor
        Filter on the (rfft) grid, not fftshifted.
    """
    k = radial_frequency(shape, rfft=rfft, dtype=torch.float64)
    if soft_width <= 0:
        return (k <= cutoff_cycles_per_px).to(dtype)
    t = ((k - (cutoff_cycles_per_px - soft_width / 2)) / soft_width).clamp(0, 1)
    return (0.5 * (1 + torch.cos(math.pi * t))).to(dtype)


def lowpass(
    x: Tensor, cutoff_cycles_per_px: float, soft_width: float = 0.05, ndim: int | None = None
) -> Tensor:
    """Soft (raised-cosine) low-pass of images or volumes; see :func:`soft_lowpass_filter`.

    Parameters
    ----------
    x : Tensor
        `(..., *S)` real data.
    cutoff_cycles_per_px : float
        Cut-off in cycles/px (filter = 0.5 there).
    soft_width : float
        Edge width in cycles/px.
    ndim : int, optional
        Number of spatial axes.

    Returns
    -------
    Tensor
        Filtered data, same shape.
    """
    x = as_float_tensor(x)
    nd = _ndim(x, ndim)
    filt = soft_lowpass_filter(x.shape[-nd:], cutoff_cycles_per_px, soft_width, True, x.dtype)
    return apply_fourier_filter(x, filt, nd)


def hann_ramp_filter(
    shape_yx: Sequence[int], tilt_axis: Literal["y", "x"] = "y",
    cutoff_cycles_per_px: float = 0.5, rfft: bool = True, dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Ramp filter for weighted back-projection of a single-axis tilt series, Hann-tapered.

    ``H(k) = |k_⊥| · ½ (1 + cos(π |k| / cutoff))`` for ``|k| < cutoff`` and 0 beyond, where
    ``k_⊥`` is the frequency perpendicular to the tilt axis (``k_x`` for a y tilt axis). The
    DC column, which stands for the interval ``|k_⊥| < 1/(2n)``, gets the interval's mean
    ``1/(4n)`` instead of 0 so that the mean density is not lost.

    Parameters
    ----------
    shape_yx : sequence of int
        Projection shape ``(h, w)``.
    tilt_axis : {"y", "x"}
        In-plane tilt axis of the projections.
    cutoff_cycles_per_px : float
        Hann cut-off in cycles/px.
    rfft : bool
        Half spectrum `(h, w // 2 + 1)`; else full `(h, w)`, not fftshifted.
    dtype : torch.dtype
        Output dtype.

    Returns
    -------
    Tensor
        Filter values (cycles/px units for the ramp).
    """
    if tilt_axis not in ("y", "x"):
        raise InputError(f"unknown tilt axis {tilt_axis!r}", field="tilt_axis",
                         expected="'y' or 'x'")
    shape = tuple(int(s) for s in shape_yx)
    k = fftfreq_grid(shape, rfft=rfft, dtype=torch.float64)
    axis = 1 if tilt_axis == "y" else 0
    ramp = k[..., axis].abs()
    ramp = torch.where(ramp == 0, torch.full_like(ramp, 1 / (4 * shape[axis])), ramp)
    kr = torch.linalg.norm(k, dim=-1)
    hann = torch.where(kr < cutoff_cycles_per_px,
                       0.5 * (1 + torch.cos(math.pi * kr / cutoff_cycles_per_px)),
                       torch.zeros_like(kr))
    return (ramp * hann).to(dtype)


def _target_shape(x: Tensor, new_size: int | Sequence[int], ndim: int | None) -> tuple[int, ...]:
    if isinstance(new_size, int):
        nd = _ndim(x, ndim)
        return (new_size,) * nd
    shape = tuple(int(s) for s in new_size)
    if len(shape) not in (2, 3) or x.dim() < len(shape):
        raise InputError(f"invalid new size {shape}", field="new_size", expected="2 or 3 sizes")
    return shape


def _resize_spectrum(x: Tensor, new_shape: tuple[int, ...]) -> Tensor:
    nd = len(new_shape)
    dims = tuple(range(-nd, 0))
    old_shape = tuple(x.shape[-nd:])
    spec = torch.fft.fftshift(torch.fft.fftn(x, dim=dims), dim=dims)
    out = torch.zeros((*x.shape[:-nd], *new_shape), dtype=spec.dtype, device=x.device)
    src, dst = [], []
    for n_old, n_new in zip(old_shape, new_shape, strict=True):
        m = min(n_old, n_new)
        # keep frequencies −m//2 … (m−1)//2 around DC (index n//2 after fftshift)
        src.append(slice(n_old // 2 - m // 2, n_old // 2 - m // 2 + m))
        dst.append(slice(n_new // 2 - m // 2, n_new // 2 - m // 2 + m))
    lead = (slice(None),) * (x.dim() - nd)
    out[lead + tuple(dst)] = spec[lead + tuple(src)]
    out = torch.fft.ifftn(torch.fft.ifftshift(out, dim=dims), dim=dims).real
    return out * (math.prod(new_shape) / math.prod(old_shape))


def fourier_crop(x: Tensor, new_size: int | Sequence[int], ndim: int | None = None) -> Tensor:
    """Down-sample by cropping the centred spectrum (band-limited resampling).

    Pixel values keep their scale (a constant image stays the same constant); the pixel size
    grows by ``old / new``.

    Parameters
    ----------
    x : Tensor
        `(..., *S)` real images/volumes.
    new_size : int or sequence of int
        New size per spatial axis (≤ old size).
    ndim : int, optional
        Number of spatial axes when ``new_size`` is an int.

    Returns
    -------
    Tensor
        `(..., *new_size)` real data.
    """
    x = as_float_tensor(x)
    shape = _target_shape(x, new_size, ndim)
    if any(n > o for n, o in zip(shape, x.shape[-len(shape):], strict=True)):
        raise InputError(f"crop size {shape} exceeds {tuple(x.shape[-len(shape):])}",
                         field="new_size", expected="sizes not larger than the input")
    return _resize_spectrum(x, shape)


def fourier_pad(x: Tensor, new_size: int | Sequence[int], ndim: int | None = None) -> Tensor:
    """Up-sample by zero-padding the centred spectrum (sinc interpolation).

    Parameters
    ----------
    x : Tensor
        `(..., *S)` real images/volumes.
    new_size : int or sequence of int
        New size per spatial axis (≥ old size).
    ndim : int, optional
        Number of spatial axes when ``new_size`` is an int.

    Returns
    -------
    Tensor
        `(..., *new_size)` real data with values on the finer grid.
    """
    x = as_float_tensor(x)
    shape = _target_shape(x, new_size, ndim)
    if any(n < o for n, o in zip(shape, x.shape[-len(shape):], strict=True)):
        raise InputError(f"pad size {shape} is smaller than {tuple(x.shape[-len(shape):])}",
                         field="new_size", expected="sizes not smaller than the input")
    return _resize_spectrum(x, shape)
