"""Momentum (EMA) target networks, shared by NRCL (3D) and MoCo v3 (2D)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_momentum_copy(module: nn.Module) -> nn.Module:
    """Deep-copy ``module`` as a momentum target: same weights, no gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place ``θ_k ← m·θ_k + (1 − m)·θ_q`` for parameters; buffers are copied.

    Parameters
    ----------
    target : nn.Module
        Momentum network (updated in place).
    online : nn.Module
        Network trained by gradient descent; same architecture as ``target``.
    momentum : float
        ``m`` in [0, 1]; 0.99 in the papers.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    for p_t, p_o in zip(target.parameters(), online.parameters(), strict=True):
        p_t.mul_(momentum).add_(p_o.detach(), alpha=1.0 - momentum)
    for b_t, b_o in zip(target.buffers(), online.buffers(), strict=True):
        b_t.copy_(b_o)


def cosine_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    """Momentum increased from ``base`` to 1 along a half cosine (MoCo v3 / BYOL schedule)."""
    if total_steps <= 0:
        return base
    import math

    frac = min(max(step / total_steps, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0
