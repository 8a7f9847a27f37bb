"""CryoRanker loss (eq. 7–11) and InfoNCE against loop-based references and analytic values."""

from __future__ import annotations

import math

import torch

from cryoframe.train.losses_margin import (
    cryoranker_loss,
    margin_ranking_loss,
    ranker_cross_entropy,
    threshold_labels,
)
from cryoframe.train.moco import infonce_loss


def _loop_margin(scores, y, delta):
    total, pairs = 0.0, 0
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] > y[j]:
                total += max(0.0, delta - (float(scores[i]) - float(scores[j])))
                pairs += 1
    return total, pairs


def _loop_ce(logits, y, alpha):
    total, n = 0.0, 0
    for z, yi in zip(logits, y):
        p = torch.softmax(z, 0)
        if yi > alpha:
            total -= math.log(float(p[1]))
            n += 1
        elif yi <= 1 - alpha:
            total -= math.log(float(p[0]))
            n += 1
    return total, n


def test_threshold_labels():
    y = torch.tensor([0.0, 0.3, 0.31, 0.7, 0.71, 1.0])
    lab, mask = threshold_labels(y, 0.7)
    assert mask.tolist() == [True, True, False, False, True, True]
    assert lab[mask].tolist() == [0, 0, 1, 1]


def test_losses_match_loops():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(17, 2, generator=g, dtype=torch.float64)
    y = torch.rand(17, generator=g, dtype=torch.float64)
    y[3] = y[5]  # a tie: not a pair
    scores = logits.softmax(-1)[:, 1]
    ref, pairs = _loop_margin(scores, y, 0.2)
    assert torch.isclose(margin_ranking_loss(scores, y, 0.2, "sum"), torch.tensor(ref, dtype=torch.float64))
    assert torch.isclose(margin_ranking_loss(scores, y, 0.2), torch.tensor(ref / pairs, dtype=torch.float64))
    ref_ce, n = _loop_ce(logits, y, 0.7)
    assert torch.isclose(ranker_cross_entropy(logits, y, 0.7, "sum"), torch.tensor(ref_ce, dtype=torch.float64))
    out = cryoranker_loss(logits, y)
    assert torch.isclose(out["loss"], torch.tensor(ref / pairs + ref_ce / n, dtype=torch.float64))


def test_analytic_values():
    # perfectly ordered scores with gaps ≥ Δ give zero margin loss; equal scores give Δ per pair
    y = torch.tensor([0.0, 0.5, 1.0])
    assert margin_ranking_loss(torch.tensor([0.0, 0.3, 0.6]), y) == 0
    assert torch.isclose(margin_ranking_loss(torch.full((3,), 0.5), y), torch.tensor(0.2))
    # zero logits: CE = log 2 per labelled image
    assert torch.isclose(ranker_cross_entropy(torch.zeros(3, 2), y), torch.tensor(math.log(2.0)))
    # no labelled images: CE is 0 and differentiable
    z = torch.zeros(2, 2, requires_grad=True)
    ranker_cross_entropy(z, torch.tensor([0.5, 0.6])).backward()
    assert z.grad is not None


def test_infonce_loop_and_collapse():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(9, 16, generator=g), torch.randn(9, 16, generator=g)
    qn, kn = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(k, dim=1)
    ref = 0.0
    for i in range(9):
        logits = torch.tensor([float(qn[i] @ kn[j]) / 0.5 for j in range(9)])
        ref += -(logits[i] - torch.logsumexp(logits, 0))
    assert torch.isclose(infonce_loss(q, k, 0.5, scale=False), ref / 9, atol=1e-5)
    same = torch.ones(8, 4)
    assert torch.isclose(infonce_loss(same, same, 0.2), torch.tensor(math.log(8) * 0.4))
