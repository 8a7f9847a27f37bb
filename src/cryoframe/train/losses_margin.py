"""CryoRanker fine-tuning loss: thresholded cross-entropy plus margin ranking (003, eq. 7–11).

With logits ``z`` `(b, 2)` and true quality ``y ∈ [0, 1]`` `(b,)`:

* eq. 7: ``p = softmax(z)``; the predicted score is ``ŷ = p₁``.
* eq. 8: ``L_MR = Σ_{(i, j): y_i > y_j} max(0, Δ − (ŷ_i − ŷ_j))`` with Δ = 0.2.
* eq. 9: ``ỹ = 1`` if ``y > α``, ``0`` if ``y ≤ 1 − α`` (α = 0.7); others have no class label.
* eq. 10: ``L_CE = −Σ_{i ∈ I} [ỹ_i log p_{i,1} + (1 − ỹ_i) log p_{i,0}]`` over labelled ``I``.
* eq. 11: ``L = L_MR + L_CE``.

The paper writes sums; with ``reduction="mean"`` (default) each term is divided by its number
of terms (pairs, labelled images), which keeps the balance independent of the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["threshold_labels", "ranker_cross_entropy", "margin_ranking_loss", "cryoranker_loss"]


def threshold_labels(y: Tensor, alpha: float = 0.7) -> tuple[Tensor, Tensor]:
    """Eq. 9: binary labels and the mask of labelled images.

    Parameters
    ----------
    y : Tensor
        `(b,)` quality scores in [0, 1].
    alpha : float
        Threshold α (> 0.5).

    Returns
    -------
    labels : Tensor
        `(b,)` int64, 1 where ``y > α``, 0 elsewhere.
    mask : Tensor
        `(b,)` bool, True where ``y > α`` or ``y ≤ 1 − α``.
    """
    if not 0.5 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0.5, 1), got {alpha}")
    pos = y > alpha
    neg = y <= 1.0 - alpha
    return pos.to(torch.int64), pos | neg


def ranker_cross_entropy(logits: Tensor, y: Tensor, alpha: float = 0.7,
                         reduction: str = "mean") -> Tensor:
    """Eq. 10: cross-entropy on the images with a thresholded label (zero if there are none)."""
    labels, mask = threshold_labels(y, alpha)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits[mask], labels[mask], reduction="sum")
    return ce / mask.sum() if reduction == "mean" else ce


def margin_ranking_loss(scores: Tensor, y: Tensor, margin: float = 0.2,
                        reduction: str = "mean") -> Tensor:
    """Eq. 8: hinge on every ordered pair with ``y_i > y_j``: ``max(0, Δ − (ŷ_i − ŷ_j))``.

    Parameters
    ----------
    scores : Tensor
        `(b,)` predicted scores ``ŷ``.
    y : Tensor
        `(b,)` true quality.
    margin : float
        Δ.
    reduction : {"mean", "sum"}
        Mean over the ordered pairs, or their sum (the paper's form).
    """
    diff = scores[:, None] - scores[None, :]  # (b, b): ŷ_i − ŷ_j
    pairs = (y[:, None] > y[None, :]).to(scores.dtype)
    hinge = torch.clamp(margin - diff, min=0.0) * pairs
    total = hinge.sum()
    if reduction == "mean":
        return total / pairs.sum().clamp_min(1.0)
    return total


def cryoranker_loss(logits: Tensor, y: Tensor, alpha: float = 0.7, margin: float = 0.2,
                    reduction: str = "mean") -> dict[str, Tensor]:
    """Eq. 11: ``L = L_MR + L_CE``.

    Parameters
    ----------
    logits : Tensor
        `(b, 2)` classifier outputs ``[z₀, z₁]``.
    y : Tensor
        `(b,)` quality scores in [0, 1].

    Returns
    -------
    dict
        ``loss``, ``ce``, ``mr`` and ``score`` (``ŷ = softmax(z)₁``, `(b,)`).
    """
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must be (b, 2), got {tuple(logits.shape)}")
    y = y.to(logits.dtype)
    score = logits.softmax(dim=-1)[:, 1]
    ce = ranker_cross_entropy(logits, y, alpha, reduction)
    mr = margin_ranking_loss(score, y, margin, reduction)
    return {"loss": ce + mr, "ce": ce.detach(), "mr": mr.detach(), "score": score.detach()}
