"""Subtomogram pairs with a known relative pose, made the way sub5-align makes them.

From a store's separated parts (reconstructed signal ``S`` and unit tilt-series noise ``N`` of
each box): ``X = S_i + α N_i`` and ``X_1 = W·T(S_i) + α' N_j``, the same particle moved by a
known rigid transform ``T = (R, t)`` (cubic B-spline rotation about the box centre, then a Fourier
shift), re-filtered by the microscope-frame wedge ``W`` (±60° about y, so both members miss the
same Fourier region) and given the noise box of another particle ``j``; ``α`` and ``α'`` give each
box the requested SNR (:func:`cryoframe.simulate.noise.combine_signal_noise`). The target is
``X_1 ≈ shift(rotate(X, R), t)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cryoframe.fourier.wedge import wedge_mask
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.train.augment3d import random_rigid_transforms

__all__ = ["make_wedge_pairs"]


def make_wedge_pairs(signal: Tensor, noise: Tensor, index: np.ndarray, snr,
                     max_rot_deg: float, max_shift_px: float, gen: torch.Generator,
                     snr_reference=None):
    """Pairs ``(X, X_1)`` of rows ``index`` (module docstring).

    Parameters
    ----------
    signal, noise : Tensor
        `(N, n, n, n)` separated signal and noise parts.
    index : array of int
        Rows to use; row ``index[k - 1]`` lends its noise to pair ``k``.
    snr : float or Tensor
        One SNR for all pairs or `(len(index),)` one per pair.
    max_rot_deg, max_shift_px : float
        Range of ``T``: angle uniform in ``[0, max_rot_deg]`` about a uniform axis (uniform on
        SO(3) from 180°), shift uniform in the ball of radius ``max_shift_px``.
    gen : torch.Generator
        Source of the transforms.
    snr_reference : float or Tensor, optional
        SNR of ``X`` (the reference) when it differs from the particle's, e.g. an average's.

    Returns
    -------
    x, x1, rotations, shifts_zyx_px, wedge
        `(B, n³)` references and particles, `(B, 3, 3)`, `(B, 3)`, `(n, n, n)` full mask.
    """
    n = len(index)
    idx = torch.as_tensor(index)
    rot, sh = random_rigid_transforms(n, max_rot_deg, max_shift_px, gen)
    s = signal[idx]
    moved = shift_volumes_fourier(rotate_volumes(s, rot, order="cubic"), sh)
    w = wedge_mask(tuple(s.shape[1:]))
    h = s.shape[-1] // 2 + 1
    moved = torch.fft.irfftn(torch.fft.rfftn(moved, dim=(-3, -2, -1)) * w[..., :h],
                             s=tuple(s.shape[1:]), dim=(-3, -2, -1))
    other = idx[torch.roll(torch.arange(n), 1)] if n > 1 else idx
    x = combine_signal_noise(s, noise[idx], snr if snr_reference is None else snr_reference)
    x1 = combine_signal_noise(moved, noise[other] if n > 1 else -noise[idx], snr)
    return x, x1, rot, sh, w
