"""Invariant-feature baseline and the from-scratch 3D CNN."""

from __future__ import annotations

import numpy as np
import torch

from cryoframe.baselines.cnn3d import _random_rot90, predict_cnn3d, train_cnn3d
from cryoframe.baselines.invariant_features import InvariantFeatureClassifier, invariant_features


def _rot90_about_centre(x: torch.Tensor, k: int, dims: tuple[int, int]) -> torch.Tensor:
    """Rotation by k·90° about voxel n // 2 (torch.rot90 turns about (n − 1) / 2)."""
    r = torch.rot90(x, k, dims=dims)
    shift = [1 if (k in (1, 2) and i == 0) or (k in (2, 3) and i == 1) else 0 for i in range(2)]
    return torch.roll(r, shifts=shift, dims=dims)


def _phantoms(n_per: int, size: int = 16, noise: float = 0.5, seed: int = 0):
    """Two classes: a solid ball and a hollow shell, at random positions near the centre."""
    g = torch.Generator().manual_seed(seed)
    ax = torch.arange(size, dtype=torch.float32) - size // 2
    zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
    vols, labels = [], []
    for c in range(2):
        for _ in range(n_per):
            off = torch.rand(3, generator=g) * 2 - 1
            r = torch.sqrt((zz - off[0]) ** 2 + (yy - off[1]) ** 2 + (xx - off[2]) ** 2)
            v = (r < 5).float() if c == 0 else ((r < 5.5) & (r > 3.5)).float()
            vols.append(v + noise * torch.randn(v.shape, generator=g))
            labels.append(c)
    return torch.stack(vols), np.array(labels)


def test_invariant_features_invariant_to_90deg_rotations():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 16, 16, 16, generator=g)
    f0 = invariant_features(v)
    assert f0.shape == (2, 8 + 8 + 9)
    for k in (1, 2, 3):
        for dims in [(-3, -2), (-3, -1), (-2, -1)]:
            fr = invariant_features(_rot90_about_centre(v, k, dims))
            torch.testing.assert_close(fr, f0, atol=1e-4, rtol=1e-4)
    # but not invariant to everything: a different volume has different features
    assert (invariant_features(torch.randn(2, 16, 16, 16, generator=g)) - f0).abs().max() > 1e-2


def test_cnn_augmentation_is_a_rotation_about_the_centre():
    v = torch.zeros(8, 16, 16, 16)
    v[:, 8, 8, 8] = 1
    out = _random_rot90(v, torch.Generator().manual_seed(1))
    assert torch.all(out[:, 8, 8, 8] == 1)


def test_invariant_classifier_and_cnn_separate_two_shapes():
    x, y = _phantoms(40)
    xt, yt = _phantoms(20, seed=1)
    inv = InvariantFeatureClassifier().fit(x, y)
    assert (inv.predict(xt) == yt).mean() > 0.9
    model = train_cnn3d(x, y, xt[:10], yt[:10], epochs=6, batch_size=16, lr=3e-3, width=4)
    acc = (predict_cnn3d(model, xt).argmax(1) == yt).mean()
    assert acc > 0.8
