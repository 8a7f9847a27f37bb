"""Rotation-invariant handcrafted features of subtomograms + logistic regression.

The trivial classification baseline of BENCHMARKS.md ("Why same-run references decide"): per
volume, after standardising it to zero mean and unit variance,

* the radial power spectrum: ``log`` of the mean ``|F(k)|²`` in shells of ``|k|`` (1 px⁻¹/n wide,
  DC excluded, up to Nyquist);
* the radial density profile: the mean density in spherical shells of 1 voxel around the box
  centre ``n // 2`` (shells inside the inscribed sphere only);
* intensity percentiles of all voxels (1, 5, 10, 25, 50, 75, 90, 95, 99).

All three are invariant to rotations about the box centre (exactly for the 90° rotations that
map the voxel grid onto itself, up to interpolation otherwise); the power spectrum is also
invariant to translations. A :class:`sklearn.linear_model.LogisticRegression` on standardised
features is the classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError

__all__ = ["PERCENTILES", "invariant_features", "InvariantFeatureClassifier"]

#: Intensity percentiles used as features.
PERCENTILES: tuple[float, ...] = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0)


def _as_batch(volumes) -> Tensor:
    vol = torch.as_tensor(np.asarray(volumes) if not isinstance(volumes, Tensor) else volumes)
    if vol.ndim == 3:
        vol = vol[None]
    if vol.ndim != 4 or len(set(vol.shape[1:])) != 1:
        raise InputError(
            f"volumes of shape {tuple(vol.shape)}", field="volumes",
            expected="cubic volumes (B, n, n, n) or (n, n, n)",
        )
    return vol.to(torch.float32)


def _shell_index(n: int, freq: bool) -> Tensor:
    """Integer shell of each voxel: ``round(|k| n)`` in Fourier space or ``round(|x − c|)``."""
    if freq:
        k = torch.fft.fftfreq(n) * n  # integer frequency index, fftfreq order
    else:
        k = torch.arange(n, dtype=torch.float32) - n // 2
    r = torch.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    return torch.round(r).long()


def _shell_means(values: Tensor, shells: Tensor, n_shells: int, first: int = 0) -> Tensor:
    """Mean of ``values`` `(B, n, n, n)` per shell ``first..n_shells-1`` → `(B, n_shells-first)`."""
    b = values.shape[0]
    flat_shell = shells.reshape(-1)
    keep = flat_shell < n_shells
    idx = flat_shell[keep]
    vals = values.reshape(b, -1)[:, keep]
    sums = torch.zeros(b, n_shells, dtype=values.dtype).index_add_(1, idx, vals)
    counts = torch.bincount(idx, minlength=n_shells).to(values.dtype)
    return (sums / counts.clamp_min(1))[:, first:]


def invariant_features(volumes) -> Tensor:
    """Rotation-invariant features of cubic volumes.

    Parameters
    ----------
    volumes : array or Tensor
        `(B, n, n, n)` or `(n, n, n)` densities, indexed (z, y, x).

    Returns
    -------
    Tensor
        `(B, n//2 + (n//2) + len(PERCENTILES))` float32: log radial power spectrum (shells 1..n/2),
        radial density profile (shells 0..n/2 − 1) and intensity percentiles, in that order.
    """
    vol = _as_batch(volumes)
    return torch.cat([_features_chunk(c) for c in torch.split(vol, 256)], dim=0)


def _features_chunk(vol: Tensor) -> Tensor:
    n = vol.shape[-1]
    flat = vol.reshape(vol.shape[0], -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, keepdim=True).clamp_min(1e-8)
    vol = ((flat - mean) / std).reshape(vol.shape)
    power = torch.fft.fftn(vol, dim=(-3, -2, -1)).abs() ** 2 / n**3
    ps = _shell_means(power, _shell_index(n, True), n // 2 + 1, first=1)
    rdp = _shell_means(vol, _shell_index(n, False), n // 2)
    q = torch.tensor(PERCENTILES, dtype=torch.float32) / 100.0
    pct = torch.quantile(vol.reshape(vol.shape[0], -1), q, dim=1).T
    return torch.cat([torch.log(ps + 1e-8), rdp, pct], dim=1)


class InvariantFeatureClassifier:
    """Invariant features → standardisation → multinomial logistic regression.

    Parameters
    ----------
    c : float
        Inverse L2 regularisation strength of the logistic regression.
    seed : int
        Seed of the solver.
    """

    def __init__(self, c: float = 1.0, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed)
        )

    def fit(self, volumes, labels) -> InvariantFeatureClassifier:
        """Fit on `(B, n, n, n)` volumes and `(B,)` integer labels."""
        self.model.fit(invariant_features(volumes).numpy(), np.asarray(labels))
        return self

    def predict_proba(self, volumes) -> np.ndarray:
        """`(B, n_classes)` class probabilities."""
        return self.model.predict_proba(invariant_features(volumes).numpy())

    def predict(self, volumes) -> np.ndarray:
        """`(B,)` predicted labels."""
        return self.model.predict(invariant_features(volumes).numpy())
