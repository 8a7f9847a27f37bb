"""Symmetric exponential contrastive loss L_sym of NRCL (000 eq. 9, after RINCE).

For a query ``z_i`` with its positive key ``z_i^+`` and the other keys of the batch as negatives
``z_j^+`` (j ≠ i), with ``s_ij = z_iᵀ z_j^+ / τ``::

    L_i = −exp(c·s_ii)/c + (1/c)·log(exp(c·s_ii) + Σ_{j≠i} exp(c·s_ij))

and ``L_sym = mean_i L_i``. The log term is a log-sum-exp over the whole row (computed stably);
``c`` trades the weight of the positive term against the negatives (RINCE's ``q``). Embeddings
are L2-normalised first (MoCo v3 convention), so ``|s| ≤ 1/τ``.

Collapsed embeddings (all equal) give ``L = −e^{c/τ}/c + 1/τ + log(B)/c``.

Caveat measured here: with τ = 0.1 the collapsed value sits far below the value at random
initialisation (for B = 32, c = 0.1: 17.5 vs 24.7, optimum ≈ 7.7) and the exponential positive
term dominates the gradient, so a CPU-sized NRCL run with eq. 9 as written collapsed (held-out
k-NN at chance after 50 steps, see the model card). :func:`rince_loss` is the RINCE loss the
paper cites (Chuang et al. 2022), ``−e^{q s⁺}/q + (λ(e^{s⁺} + Σ e^{s⁻}))^q / q``, whose
power (instead of log) on the negatives keeps a uniformity pressure; the pretraining config
chooses between them (``sym_variant``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sym_loss", "rince_loss"]


def sym_loss(query: Tensor, key: Tensor, temperature: float = 0.1, c: float = 0.1,
             normalize: bool = True) -> Tensor:
    """L_sym of eq. 9 averaged over the batch.

    Parameters
    ----------
    query : Tensor
        `(B, E)` online (predictor) outputs ``z``.
    key : Tensor
        `(B, E)` momentum outputs; row ``i`` is the positive of query ``i``, the other rows
        its negatives.
    temperature : float
        τ > 0.
    c : float
        Weight parameter c > 0.
    normalize : bool
        L2-normalise both inputs first.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if query.shape != key.shape or query.ndim != 2:
        raise ValueError(f"query and key must both be (B, E); got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    if temperature <= 0 or c <= 0:
        raise ValueError(f"temperature and c must be positive, got {temperature}, {c}")
    if normalize:
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    s = query @ key.T / temperature  # (B, B)
    pos = torch.diagonal(s)
    loss = -torch.exp(c * pos) / c + torch.logsumexp(c * s, dim=1) / c
    return loss.mean()


def rince_loss(query: Tensor, key: Tensor, temperature: float = 0.1, q: float = 0.5,
               lam: float = 0.01, normalize: bool = True) -> Tensor:
    """RINCE (Chuang et al. 2022) with the batch's other keys as negatives, batch mean.

    ``L_i = −exp(q s_ii)/q + (λ Σ_j exp(s_ij))^q / q`` with ``s_ij = z_iᵀ z_j^+ / τ`` (the sum
    includes the positive ``j = i``).

    Parameters
    ----------
    query, key : Tensor
        `(B, E)`; row ``i`` of ``key`` is the positive of query ``i``.
    temperature : float
        τ > 0.
    q : float
        Exponent in (0, 1]; q → 0 approaches InfoNCE, q = 1 is symmetric (noise-robust).
    lam : float
        Weight λ of the density term.
    normalize : bool
        L2-normalise both inputs first.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if query.shape != key.shape or query.ndim != 2:
        raise ValueError(f"query and key must both be (B, E); got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    if temperature <= 0 or not 0 < q <= 1 or lam <= 0:
        raise ValueError(f"need temperature > 0, 0 < q <= 1, lam > 0; got {temperature}, {q}, "
                         f"{lam}")
    if normalize:
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    s = query @ key.T / temperature  # (B, B)
    pos = torch.diagonal(s)
    neg = torch.exp(q * (math.log(lam) + torch.logsumexp(s, dim=1))) / q
    return (-torch.exp(q * pos) / q + neg).mean()
