"""Learning-rate schedules."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float = 0.0) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine to ``final_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / max(warmup_steps, 1)
    span = max(total_steps - warmup_steps, 1)
    frac = min((step - warmup_steps) / span, 1.0)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * frac))


def scaled_lr(batch_size: int, base_lr: float = 1e-5, reference_batch: int = 512) -> float:
    """Square-root scaling ``√(batch/512)·base_lr`` used by NRCL (000 §3.1)."""
    return math.sqrt(batch_size / reference_batch) * base_lr
