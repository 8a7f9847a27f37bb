"""Missing-wedge masks of single-axis tilt series in the Fourier space of a tomogram.

Geometry: the beam is along ``z`` at zero tilt; a tilt by ``α`` is a right-handed rotation
of the specimen about the tilt axis (``y``: ``z`` turns towards ``x``; ``x``: ``y`` turns
towards ``z``). By the central-slice theorem the image at tilt ``α`` samples the plane normal
to the beam direction in the specimen frame, so a frequency ``k`` is measured iff its
"elevation" ``α(k)`` lies in ``[tilt_min, tilt_max]``::

    tilt axis y:  tan α(k) =  k_z / k_x
    tilt axis x:  tan α(k) = −k_z / k_y

with ``α ∈ (−90°, 90°]``. Frequencies on the tilt axis belong to every plane. The mask is a
pure geometric indicator (no slice thickness, no weighting).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry.grids import fftfreq_grid
from cryoframe.geometry.transforms import rotate_volumes

__all__ = ["missing_wedge_mask", "tilt_elevation_deg", "wedge_mask", "rotate_fourier_mask"]


def tilt_elevation_deg(k_zyx: Tensor, tilt_axis: Literal["y", "x"] = "y") -> Tensor:
    """Tilt angle (degrees, in ``(−90, 90]``) whose central plane contains frequency ``k``.

    Parameters
    ----------
    k_zyx : Tensor
        `(..., 3)` frequencies (any units), zyx.
    tilt_axis : {"y", "x"}
        Tilt axis.

    Returns
    -------
    Tensor
        `(...)` angles; 0 for frequencies on the tilt axis.
    """
    if tilt_axis == "y":
        a = torch.atan2(k_zyx[..., 0], k_zyx[..., 2])
    elif tilt_axis == "x":
        a = torch.atan2(-k_zyx[..., 0], k_zyx[..., 1])
    else:
        raise InputError(f"unknown tilt axis {tilt_axis!r}", field="tilt_axis",
                         expected="'y' or 'x'")
    a = torch.rad2deg(a)
    a = torch.where(a > 90.0, a - 180.0, a)
    a = torch.where(a <= -90.0, a + 180.0, a)
    return a


def missing_wedge_mask(
    shape_zyx: Sequence[int],
    tilt_min_deg: float = -60.0,
    tilt_max_deg: float = 60.0,
    tilt_axis: Literal["y", "x"] = "y",
    rfft: bool = False,
    fftshift: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Binary mask, 1 where the tilt range samples Fourier space, 0 in the missing wedge.

    Parameters
    ----------
    shape_zyx : sequence of int
        Real-space volume shape ``(d, h, w)``.
    tilt_min_deg, tilt_max_deg : float
        Tilt range in degrees, ``−90 ≤ min ≤ max ≤ 90``.
    tilt_axis : {"y", "x"}
        Tilt axis; the beam is along z at zero tilt.
    rfft : bool
        Half spectrum `(d, h, w // 2 + 1)` (as ``torch.fft.rfftn``).
    fftshift : bool
        DC at the centre on the full axes.
    dtype, device
        Output dtype and device.

    Returns
    -------
    Tensor
        `(d, h, w)` or `(d, h, w // 2 + 1)` mask of 0/1.
    """
    if len(tuple(shape_zyx)) != 3:
        raise InputError(f"shape must be (d, h, w), got {tuple(shape_zyx)}", field="shape_zyx",
                         expected="three sizes")
    if not -90.0 <= tilt_min_deg <= tilt_max_deg <= 90.0:
        raise InputError(f"invalid tilt range [{tilt_min_deg}, {tilt_max_deg}]",
                         field="tilt_min_deg", expected="-90 <= min <= max <= 90 degrees")
    k = fftfreq_grid(shape_zyx, rfft=rfft, fftshift=fftshift, dtype=torch.float64, device=device)
    alpha = tilt_elevation_deg(k, tilt_axis)
    eps = 1e-9
    inside = (alpha >= tilt_min_deg - eps) & (alpha <= tilt_max_deg + eps)
    if tilt_min_deg <= -90.0 + eps:  # −90° and +90° are the same plane (α is folded to +90)
        inside |= alpha >= 90.0 - eps
    perp = 2 if tilt_axis == "y" else 1  # in-plane axis perpendicular to the tilt axis
    inside |= (k[..., 0] == 0) & (k[..., perp] == 0)  # tilt axis (and DC): in every plane
    return inside.to(dtype)


def wedge_mask(shape_zyx: tuple[int, int, int], tilt_min_deg: float = -60.0,
               tilt_max_deg: float = 60.0) -> Tensor:
    """Full-spectrum (fftfreq order) missing-wedge mask of a single-axis tilt series about y.

    Thin wrapper of :func:`cryoframe.fourier.wedge.missing_wedge_mask` returning float32.
    """
    return torch.as_tensor(
        missing_wedge_mask(tuple(shape_zyx), tilt_min_deg=tilt_min_deg,
                           tilt_max_deg=tilt_max_deg, tilt_axis="y", rfft=False)
    ).to(torch.float32)


def rotate_fourier_mask(mask_full: Tensor, rotations: Tensor) -> Tensor:
    """Rotate a Fourier-space mask: ``M_R(k) = M(Rᵀ k)`` (the sampled region of a rotated volume).

    Parameters
    ----------
    mask_full : Tensor
        `(n, n, n)` mask over the full spectrum in fftfreq order (DC at index 0).
    rotations : Tensor
        `(B, 3, 3)` active rotations.

    Returns
    -------
    Tensor
        `(B, n, n, n // 2 + 1)` rotated mask on the rfft half spectrum, values in [0, 1]
        (trilinear interpolation, so edges are soft).
    """
    shifted = torch.fft.fftshift(mask_full.to(torch.float32), dim=(-3, -2, -1))  # DC at n // 2
    rot = rotate_volumes(shifted, rotations, order="linear")
    full = torch.fft.ifftshift(rot, dim=(-3, -2, -1))
    return full[..., : mask_full.shape[-1] // 2 + 1].clamp(0, 1)
