"""C-alpha RMSD after optimal superposition (Kabsch), batched in torch."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kabsch_rmsd", "mean_rmsd"]


def kabsch_rmsd(pred: Tensor, target: Tensor) -> Tensor:
    """Minimum RMSD over rigid motions (rotation + translation, no reflection).

    Parameters
    ----------
    pred, target : Tensor
        `(..., n, 3)` coordinates in Å (any fixed axis order).

    Returns
    -------
    Tensor
        `(...)` RMSD in Å.
    """
    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    p = p - p.mean(dim=-2, keepdim=True)
    t = t - t.mean(dim=-2, keepdim=True)
    h = p.transpose(-1, -2) @ t  # (..., 3, 3)
    u, s, vt = torch.linalg.svd(h)
    sign = torch.sign(torch.linalg.det(u @ vt))
    s = torch.cat([s[..., :2], (s[..., 2] * sign)[..., None]], dim=-1)
    msd = ((p**2).sum(dim=(-2, -1)) + (t**2).sum(dim=(-2, -1)) - 2 * s.sum(dim=-1)) / p.shape[-2]
    return msd.clamp_min(0).sqrt()


def mean_rmsd(pred: Tensor, target: Tensor) -> float:
    """Average over images of :func:`kabsch_rmsd` (Å)."""
    return float(kabsch_rmsd(pred, target).mean())
