"""Pose estimation by measure lifting over a discrete SO(3) grid (ESL-style, supplement §6).

For each image ``y`` and its current predicted conformation ``x``, the lifted problem looks for
a discrete probability measure ``μ = Σ_j w_j δ_{φ_j}`` on the grid minimising
``Σ_j w_j d_j + (1/2τ) Σ_j w_j²`` with ``d_j = ||y − F(φ_j, x)||²`` (quadratic regularisation,
which keeps the measure from collapsing onto one grid point). Restricted to the ``J0`` grid
points of smallest discrepancy, the minimiser has the closed form ``w_j ∝ max(0, t − d_j)``;
we fix the threshold by ``η``: ``t = d_(1) + (d_(J0) − d_(1)) / η`` (η = 2/3, J0 = 15 in the
paper), so every one of the J0 points keeps a weight and the best ones dominate. This is our
reading of "J0 best grid points, regularised weights η"; the paper does not print the formula.

As in the paper, the loss is the expected discrepancy over the measure, computed per predicted
conformation. For speed on a CPU the global grid search runs on block-binned images every few
epochs and the measure's support is kept in between; its weights are recomputed at full
resolution for the current conformation at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cryoframe.hetero.forward import ResidueForwardModel

__all__ = ["esl_weights", "grid_search", "expected_discrepancy", "bin_images"]


def bin_images(images: Tensor, factor: int) -> Tensor:
    """`(b, h, w)` → `(b, h/f, w/f)` block averages (``factor`` must divide the size)."""
    if factor == 1:
        return images
    return torch.nn.functional.avg_pool2d(images[:, None], factor)[:, 0]


def esl_weights(discrepancy: Tensor, eta: float = 2.0 / 3.0) -> Tensor:
    """Regularised weights of the lifted measure on its ``J0`` support points.

    Parameters
    ----------
    discrepancy : Tensor
        `(b, J0)` discrepancies of the support points (any order).
    eta : float
        0 < η ≤ 1; smaller η spreads the weight more evenly.

    Returns
    -------
    Tensor
        `(b, J0)` non-negative weights summing to 1.
    """
    d = discrepancy.detach()
    lo = d.min(dim=-1, keepdim=True).values
    hi = d.max(dim=-1, keepdim=True).values
    t = lo + (hi - lo) / eta
    w = (t - d).clamp_min(0)
    w = torch.where(w.sum(-1, keepdim=True) > 0, w, torch.ones_like(w))
    return w / w.sum(dim=-1, keepdim=True)


@torch.no_grad()
def grid_search(model: ResidueForwardModel, coords: Tensor, images: Tensor, ctf: Tensor,
                grid: Tensor, j0: int = 15, bin_factor: int = 1, chunk: int = 1024
                ) -> tuple[Tensor, Tensor]:
    """Discrepancy of every grid rotation; keep the ``J0`` best per image.

    Parameters
    ----------
    model : ResidueForwardModel
    coords : Tensor
        `(b, n_res, 3)` current conformations.
    images : Tensor
        `(b, h, w)` images (binned by ``bin_factor``), unit noise.
    ctf : Tensor
        `(b, n_pad, n_pad // 2 + 1)` CTFs of the binned padded box.
    grid : Tensor
        `(g, 3, 3)` rotations.
    j0 : int
        Support size.
    bin_factor : int
        Binning of ``images`` relative to the model's box.
    chunk : int
        Grid rotations evaluated at once.

    Returns
    -------
    index : Tensor
        `(b, J0)` grid indices, best first.
    discrepancy : Tensor
        `(b, J0)` their squared errors.
    """
    out_i, out_d = [], []
    for b in range(coords.shape[0]):
        ds = []
        for s in range(0, grid.shape[0], chunk):
            r = grid[s:s + chunk]
            pred = model(coords[b:b + 1].expand(r.shape[0], -1, -1), r,
                         ctf[b:b + 1].expand(r.shape[0], -1, -1), bin_factor)
            ds.append(((pred - images[b]) ** 2).sum(dim=(-2, -1)))
        d = torch.cat(ds)
        best = torch.topk(d, k=min(j0, d.numel()), largest=False)
        out_i.append(best.indices)
        out_d.append(best.values)
    return torch.stack(out_i), torch.stack(out_d)


def expected_discrepancy(model: ResidueForwardModel, coords: Tensor, images: Tensor, ctf: Tensor,
                         support: Tensor, eta: float = 2.0 / 3.0) -> tuple[Tensor, Tensor]:
    """Expected squared error over the lifted measure (differentiable in ``coords``).

    Parameters
    ----------
    model : ResidueForwardModel
    coords : Tensor
        `(b, n_res, 3)` conformations.
    images : Tensor
        `(b, h, w)` images (unit noise).
    ctf : Tensor
        `(b, n_pad, n_pad // 2 + 1)` CTFs.
    support : Tensor
        `(b, J0, 3, 3)` support rotations of each image's measure.
    eta : float
        Weight regularisation.

    Returns
    -------
    loss : Tensor
        `(b,)` Σ_j w_j ||y − F(φ_j, x)||².
    weights : Tensor
        `(b, J0)` the measure's weights.
    """
    b, j0 = support.shape[:2]
    x = coords[:, None].expand(-1, j0, -1, -1).reshape(b * j0, *coords.shape[1:])
    c = ctf[:, None].expand(-1, j0, -1, -1).reshape(b * j0, *ctf.shape[1:])
    pred = model(x, support.reshape(b * j0, 3, 3), c).reshape(b, j0, *images.shape[1:])
    d = ((pred - images[:, None]) ** 2).sum(dim=(-2, -1))  # (b, J0)
    w = esl_weights(d, eta)
    return (w * d).sum(dim=-1), w
