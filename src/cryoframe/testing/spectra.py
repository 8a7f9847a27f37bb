"""Spectral checks: missing-wedge power of reconstructed or simulated subtomograms."""

from __future__ import annotations

import torch

from cryoframe.fourier.wedge import missing_wedge_mask
from cryoframe.geometry.grids import radial_frequency

__all__ = ["wedge_power_ratio"]


def wedge_power_ratio(vols: torch.Tensor, tilt_max_deg: float = 60.0,
                      min_cycles_per_px: float = 1 / 16,
                      max_cycles_per_px: float = 0.45) -> torch.Tensor:
    """Mean Fourier power per voxel inside / outside the missing wedge.

    Parameters
    ----------
    vols : Tensor
        `(..., D, H, W)` maps, zyx; the wedge is that of a ±``tilt_max_deg`` series about y.
    tilt_max_deg : float
        Largest tilt of the (symmetric) series.
    min_cycles_per_px, max_cycles_per_px : float
        Frequency band compared (cycles/px).

    Returns
    -------
    Tensor
        `(...)` ratio; 0 for an ideal wedge-limited map, ≈ 1 for isotropic data.
    """
    shape = tuple(vols.shape[-3:])
    m = missing_wedge_mask(shape, -tilt_max_deg, tilt_max_deg, "y", rfft=True).bool()
    k = radial_frequency(shape, rfft=True)
    band = (k >= min_cycles_per_px) & (k <= max_cycles_per_px)
    p = torch.fft.rfftn(vols, dim=(-3, -2, -1)).abs() ** 2
    return p[..., band & ~m].mean(-1) / p[..., band & m].mean(-1)
