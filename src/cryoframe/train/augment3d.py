"""NRCL views of a subtomogram batch (000 Algorithm 2 line 2–3, App. E.1 augmentations).

For clean volumes ``S`` (from the store / fast path) :func:`make_nrcl_views` builds

- ``X = S + N(snr_in)``: the input, with CryoEngine's calibrated noise at an SNR drawn from
  ``input_snrs`` (:func:`cryoframe.simulate.noise.add_noise`, deterministic per row);
- ``X_clean = S`` and ``X_noisy = S + N(noisy_snr)`` (a very noisy version);
- a second, independent instance ``X' = R' S + N'``: the clean volume turned by a uniform random
  rotation ``R'`` with its own noise draw at its own SNR;
- random rigid transforms ``T`` and ``T'`` (rotation up to ``max_rotation_deg`` about a uniform
  axis — 180° gives uniform SO(3) — and a shift of up to ``max_shift_px`` voxels):
  ``X_1 = T X``, ``X_{1,clean} = T X_clean``, ``X_{1,noisy} = T X_noisy``, ``X_2 = T' X'``;
- photometric augmentations of App. E.1 on ``X_1`` and ``X_2``: additive Gaussian noise
  (std up to ``extra_noise_max`` × the view's std), solarisation with probability 0.2
  (values above ``μ + σ`` reflected about it), brightness ``± 20 %`` of the mean intensity.

The two pairs that form an instance positive, ``(X_1, X)`` and ``(X_2, X')``, share no volume, no
noise draw and no orientation: when both pairs held the same ``X`` (the first implementation),
the ``X`` half of the pair embedding alone retrieved the positive among 64 samples 92 % of the
time at random initialisation, and the loss fell without the encoder learning anything
(``tests/train/test_nrcl_shortcut.py``).

Every view of a sample is standardised with the mean and std of that sample's ``X`` (one affine
map per sample), so ``X`` has zero mean and unit variance and the clean view keeps its lower
amplitude; :func:`standardize` does the same for inference inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from cryoframe.geometry.rotations import axis_angle_to_matrix, random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.simulate.noise import add_noise

__all__ = ["random_rigid_transforms", "apply_rigid", "photometric", "standardize",
           "make_nrcl_views"]


def random_rigid_transforms(n: int, max_rotation_deg: float, max_shift_px: float,
                            generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random rotations (uniform axis, angle uniform in [0, max]) and shifts in a ball.

    Returns
    -------
    rotations : Tensor
        `(n, 3, 3)` zyx-acting rotations (uniform on SO(3) when ``max_rotation_deg >= 180``).
    shifts_zyx_px : Tensor
        `(n, 3)` shifts in voxels, uniform in the ball of radius ``max_shift_px``.
    """
    if max_rotation_deg >= 180:
        rot = random_rotations(n, generator=generator)
    else:
        axis = torch.randn(n, 3, generator=generator, dtype=torch.float64)
        axis = axis / axis.norm(dim=-1, keepdim=True)
        angle = torch.rand(n, generator=generator, dtype=torch.float64) * math.radians(
            max_rotation_deg)
        rot = axis_angle_to_matrix(axis, angle).float()
    d = torch.randn(n, 3, generator=generator)
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    r = torch.rand(n, 1, generator=generator) ** (1 / 3) * max_shift_px
    return rot.float(), d * r


def apply_rigid(vol: Tensor, rotations: Tensor, shifts_zyx_px: Tensor) -> Tensor:
    """Rotate about the box centre (trilinear) then shift (Fourier): `(B, L, L, L)` → same."""
    out = rotate_volumes(vol, rotations)
    if torch.any(shifts_zyx_px != 0):
        out = shift_volumes_fourier(out, shifts_zyx_px)
    return out.to(vol.dtype)


def photometric(vol: Tensor, mean_ref: Tensor, generator: torch.Generator,
                extra_noise_max: float = 0.5, solarize_p: float = 0.2,
                brightness: float = 0.2) -> Tensor:
    """App. E.1 intensity augmentations on `(B, L, L, L)` raw views.

    ``mean_ref`` `(B,)` is the mean intensity the brightness change is relative to.
    """
    b = vol.shape[0]
    flat = vol.reshape(b, -1)
    std = flat.std(dim=1)
    sigma = torch.rand(b, generator=generator) * extra_noise_max * std
    noise = torch.randn(vol.shape, generator=generator)
    out = vol + sigma.view(b, 1, 1, 1) * noise
    thr = (flat.mean(1) + std).view(b, 1, 1, 1)
    sol = (torch.rand(b, generator=generator) < solarize_p).view(b, 1, 1, 1)
    out = torch.where(sol & (out > thr), 2 * thr - out, out)
    shift = (torch.rand(b, generator=generator) * 2 - 1) * brightness * mean_ref
    return out + shift.view(b, 1, 1, 1)


def standardize(vol: Tensor, ref: Tensor | None = None) -> Tensor:
    """`(B, L, L, L)` → zero mean, unit std using the statistics of ``ref`` (default ``vol``)."""
    ref = vol if ref is None else ref
    flat = ref.reshape(ref.shape[0], -1)
    mu = flat.mean(1).view(-1, 1, 1, 1)
    sd = flat.std(1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return (vol - mu) / sd


def make_nrcl_views(clean: Tensor, indices: Tensor, *, step: int, seed: int,
                    input_snrs: Sequence[float] = (1.0, 0.3, 0.1, 0.05, 0.03),
                    noisy_snr: float = 0.003, max_rotation_deg: float = 180.0,
                    max_shift_px: float = 3.0, extra_noise_max: float = 0.5,
                    solarize_p: float = 0.2, brightness: float = 0.2) -> dict[str, Tensor]:
    """All inputs of one NRCL step (see module docstring).

    Parameters
    ----------
    clean : Tensor
        `(B, L, L, L)` clean subtomograms.
    indices : Tensor
        `(B,)` row indices (seed the calibrated noise).
    step : int
        Training step (with ``seed``, seeds every random draw: resumable).
    seed : int
        Run seed.

    Returns
    -------
    dict
        ``x``, ``x1``, ``x1_clean``, ``x1_noisy``, ``x_b``, ``x2``: `(B, 1, L, L, L)`
        standardised views (``x_b`` is the second instance ``X'``, ``x2 = T' X'``);
        ``rotation`` `(B, 3, 3)` and ``shift_zyx_px`` `(B, 3)` of ``T`` (``X_1 = T X``);
        ``snr`` `(B,)` input SNR of each sample.
    """
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))
    b = clean.shape[0]
    snr_idx = torch.randint(len(input_snrs), (b,), generator=gen)
    noise_seed = int(seed) * 7919 + int(step)
    idx = np.asarray(indices).reshape(-1)
    x = torch.empty_like(clean)
    for k, snr in enumerate(input_snrs):
        sel = (snr_idx == k).nonzero()[:, 0]
        if len(sel):
            x[sel] = add_noise(clean[sel], float(snr), noise_seed, idx[sel.numpy()])
    x_noisy = add_noise(clean, float(noisy_snr), noise_seed + 1, idx)
    rot1, sh1 = random_rigid_transforms(b, max_rotation_deg, max_shift_px, gen)
    rot2, sh2 = random_rigid_transforms(b, max_rotation_deg, max_shift_px, gen)
    rot_b, _ = random_rigid_transforms(b, 180.0, 0.0, gen)
    clean_b = apply_rigid(clean, rot_b, torch.zeros(b, 3))
    snr_idx_b = torch.randint(len(input_snrs), (b,), generator=gen)
    x_b = torch.empty_like(clean)
    for k, snr in enumerate(input_snrs):
        sel = (snr_idx_b == k).nonzero()[:, 0]
        if len(sel):
            x_b[sel] = add_noise(clean_b[sel], float(snr), noise_seed + 2, idx[sel.numpy()])
    stacked = torch.cat([x, clean, x_noisy])
    moved = apply_rigid(stacked, rot1.repeat(3, 1, 1), sh1.repeat(3, 1))
    x1, x1_clean, x1_noisy = moved.split(b)
    x2 = apply_rigid(x_b, rot2, sh2)
    mean_ref = x.reshape(b, -1).mean(1)
    mean_ref_b = x_b.reshape(b, -1).mean(1)
    x1 = photometric(x1, mean_ref, gen, extra_noise_max, solarize_p, brightness)
    x2 = photometric(x2, mean_ref_b, gen, extra_noise_max, solarize_p, brightness)
    views = {name: standardize(v, x)[:, None] for name, v in
             [("x", x), ("x1", x1), ("x1_clean", x1_clean), ("x1_noisy", x1_noisy)]}
    views.update({name: standardize(v, x_b)[:, None] for name, v in
                  [("x_b", x_b), ("x2", x2)]})
    snrs = torch.tensor([float(s) for s in input_snrs])[snr_idx]
    return {**views, "rotation": rot1, "shift_zyx_px": sh1, "snr": snrs}
