"""Objective of the autodecoder (paper §3.4 and supplement §4).

``L = ||y − F(φ, x)||² / (σ_noise² · n_pixels) + λ0·R0(x) + λ1·R1(x) + λ2·R2(x)``

* R0 — squared norm of the C-alpha centroid (Å²);
* R1 — eq. (4): mean squared change of consecutive C-alpha distances (Å²), divided by N;
* R2 — eq. (5): Σ_{i<j} exp(−ω|i−j|) · log²(|x_i − x_j| / |x0_i − x0_j|).

Supplement §4 values: λ0 = 5e-4, λ1 = 0.01, ω = 0.25, λ2 = 0.01 (or 0 without R2). The data term
is a per-pixel mean squared error of images normalised to unit noise variance (as RELION
normalises particles); ``TrainConfig(data_term="sum")`` uses the plain sum (the Gaussian
negative log-likelihood). The paper states neither its image normalisation nor whether its
squared norm is summed or averaged, so this balance with the λ's is our choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["RegularizerWeights", "r0_centring", "r1_bonds", "r2_log_distance", "regularizer",
           "data_discrepancy", "warmup_factor"]


@dataclass(frozen=True)
class RegularizerWeights:
    """λ0, λ1, λ2 and ω of supplement §4."""

    lambda0: float = 5e-4
    lambda1: float = 0.01
    lambda2: float = 0.01
    omega: float = 0.25


def r0_centring(x: Tensor) -> Tensor:
    """`(b, n, 3)` → `(b,)` squared norm of the centroid (Å²)."""
    return (x.mean(dim=-2) ** 2).sum(dim=-1)


def r1_bonds(x: Tensor, x0: Tensor) -> Tensor:
    """Eq. (4): `(b, n, 3)`, `(n, 3)` → `(b,)` (1/N) Σ (|x_{i+1}−x_i| − |x0_{i+1}−x0_i|)²."""
    d = (x[..., 1:, :] - x[..., :-1, :]).norm(dim=-1)
    d0 = (x0[1:] - x0[:-1]).norm(dim=-1)
    return ((d - d0) ** 2).sum(dim=-1) / x.shape[-2]


@lru_cache(maxsize=16)
def _band_pairs(n: int, k_max: int) -> tuple[Tensor, Tensor]:
    """Residue pairs (i, j) with 1 ≤ j − i ≤ k_max, as two `(n_pairs,)` index tensors."""
    i = torch.cat([torch.arange(n - k) for k in range(1, k_max + 1)])
    j = torch.cat([torch.arange(k, n) for k in range(1, k_max + 1)])
    return i, j


def r2_log_distance(x: Tensor, x0: Tensor, omega: float = 0.25, eps: float = 1e-6,
                    weight_cutoff: float = 1e-6) -> Tensor:
    """Eq. (5): `(b, n, 3)`, `(n, 3)` → `(b,)` Σ_{i<j} e^{−ω|i−j|} log²(|x_i−x_j| / |x0_i−x0_j|).

    Pairs whose weight ``e^{−ω|i−j|}`` is below ``weight_cutoff`` (|i − j| > 55 for ω = 0.25)
    are dropped (``weight_cutoff=0`` keeps all); with ω = 0 every pair counts.
    """
    n = x.shape[-2]
    k_max = n - 1
    if omega > 0 and weight_cutoff > 0:
        k_max = min(k_max, int(math.floor(-math.log(weight_cutoff) / omega)))
    i, j = (t.to(x.device) for t in _band_pairs(n, k_max))
    d = (torch.index_select(x, -2, j) - torch.index_select(x, -2, i)).norm(dim=-1)  # (b, pairs)
    d0 = (x0[j] - x0[i]).norm(dim=-1)
    w = torch.exp(-omega * (j - i).to(x.dtype))
    return (w * torch.log(d.clamp_min(eps) / d0.clamp_min(eps)) ** 2).sum(dim=-1)


def regularizer(x: Tensor, x0: Tensor, weights: RegularizerWeights) -> Tensor:
    """`(b,)` λ0 R0 + λ1 R1 + λ2 R2 (R2 skipped when λ2 = 0)."""
    out = weights.lambda0 * r0_centring(x) + weights.lambda1 * r1_bonds(x, x0)
    if weights.lambda2 > 0:
        out = out + weights.lambda2 * r2_log_distance(x, x0, weights.omega)
    return out


def data_discrepancy(images: Tensor, predicted: Tensor, noise_std: float) -> Tensor:
    """`(..., h, w)` pair → `(...)` squared error in units of the noise variance."""
    return ((images - predicted) ** 2).sum(dim=(-2, -1)) / noise_std**2


def warmup_factor(epoch: int, warmup_epochs: int = 20) -> float:
    """Learning-rate factor ``min(epoch / 20, 1)`` with epochs counted from 1."""
    return min(max(epoch, 1) / warmup_epochs, 1.0)
