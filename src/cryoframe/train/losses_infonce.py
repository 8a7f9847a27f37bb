"""Noise-aware InfoNCE of NRCL (000 eq. 12).

Each query ``z`` has exactly one positive ``z^+`` (the momentum embedding of the *clean* view)
and one negative ``z^-`` (the momentum embedding of a very noisy view)::

    L = −log( exp(zᵀz⁺/τ) / (exp(zᵀz⁺/τ) + exp(zᵀz⁻/τ)) ) = softplus((zᵀz⁻ − zᵀz⁺)/τ)

averaged over the batch. With ``z⁺ = z⁻`` the loss is ``log 2`` whatever ``z``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["noise_infonce_loss"]


def noise_infonce_loss(query: Tensor, positive: Tensor, negative: Tensor,
                       temperature: float = 0.1, normalize: bool = True) -> Tensor:
    """Eq. 12 averaged over the batch.

    Parameters
    ----------
    query : Tensor
        `(B, E)` online embeddings ``z``.
    positive : Tensor
        `(B, E)` embeddings of the clean views ``z⁺``.
    negative : Tensor
        `(B, E)` embeddings of the very noisy views ``z⁻``.
    temperature : float
        τ > 0.
    normalize : bool
        L2-normalise the inputs first.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if not (query.shape == positive.shape == negative.shape) or query.ndim != 2:
        raise ValueError("query, positive and negative must all be (B, E) of the same shape")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if normalize:
        query = F.normalize(query, dim=-1)
        positive = F.normalize(positive, dim=-1)
        negative = F.normalize(negative, dim=-1)
    s_pos = (query * positive).sum(-1) / temperature
    s_neg = (query * negative).sum(-1) / temperature
    return F.softplus(s_neg - s_pos).mean()
