"""Symmetric exponential contrastive loss L_sym of NRCL (000 eq. 9, after RINCE).

For a query ``z_i`` with its positive key ``z_i^+`` and the other keys of the batch as negatives
``z_j^+`` (j ≠ i), with ``s_ij = z_iᵀ z_j^+ / τ``::

    L_i = −exp(c·s_ii)/c + (1/c)·log(exp(c·s_ii) + Σ_{j≠i} exp(c·s_ij))

and ``L_sym = mean_i L_i``. The log term is a log-sum-exp over the whole row (computed stably);
``c`` trades the weight of the positive term against the negatives (RINCE's ``q``). Embeddings
are L2-normalised first (MoCo v3 convention), so ``|s| ≤ 1/τ``.

Collapsed embeddings (all equal) give ``L = −e^{c/τ}/c + 1/τ + log(B)/c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sym_loss"]


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
