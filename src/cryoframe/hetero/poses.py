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

__all__ = ["esl_weights", "grid_search", "coarse_to_fine_search", "expected_discrepancy",
           "bin_images", "nearest_grid_points"]


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


def nearest_grid_points(rotations: Tensor, grid: Tensor, k: int) -> Tensor:
    """`(b, 3, 3)` rotations → `(b, k)` indices of the ``k`` nearest grid elements (geodesic)."""
    cos_like = torch.einsum("bij,gij->bg", rotations.to(grid.dtype), grid)  # trace(Rᵀ G)
    return torch.topk(cos_like, k=min(k, grid.shape[0]), dim=-1).indices


@torch.no_grad()
def coarse_to_fine_search(model: ResidueForwardModel, coords: Tensor, images: Tensor,
                          ctf_levels: dict[int, Tensor], coarse_grid: Tensor, fine_grid: Tensor,
                          j0: int = 15, coarse_bin: int = 4, fine_bin: int = 2,
                          n_coarse: int = 4, n_neighbours: int = 40) -> tuple[Tensor, Tensor]:
    """Support of the lifted measure on ``fine_grid`` by a two-level search.

    The whole ``coarse_grid`` is scored on images binned by ``coarse_bin``; the ``n_coarse``
    best rotations each contribute their ``n_neighbours`` nearest ``fine_grid`` elements, which
    are scored on images binned by ``fine_bin``; the ``J0`` best of those are returned.

    Parameters
    ----------
    model : ResidueForwardModel
    coords : Tensor
        `(b, n_res, 3)` current conformations.
    images : Tensor
        `(b, h, w)` full-resolution images.
    ctf_levels : dict
        ``{bin: (b, n_pad_bin, n_pad_bin // 2 + 1)}`` CTFs for ``coarse_bin`` and ``fine_bin``.
    coarse_grid, fine_grid : Tensor
        `(g_c, 3, 3)` and `(g_f, 3, 3)` rotations.

    Returns
    -------
    index : Tensor
        `(b, J0)` indices into ``fine_grid``, best first.
    discrepancy : Tensor
        `(b, J0)` squared errors at ``fine_bin``.
    """
    y_c, y_f = bin_images(images, coarse_bin), bin_images(images, fine_bin)
    top, _ = grid_search(model, coords, y_c, ctf_levels[coarse_bin], coarse_grid, n_coarse,
                         coarse_bin)
    out_i, out_d = [], []
    for b in range(coords.shape[0]):
        cand = nearest_grid_points(coarse_grid[top[b]], fine_grid, n_neighbours).reshape(-1)
        cand = torch.unique(cand)
        r = fine_grid[cand]
        pred = model(coords[b:b + 1].expand(r.shape[0], -1, -1), r,
                     ctf_levels[fine_bin][b:b + 1].expand(r.shape[0], -1, -1), fine_bin)
        d = ((pred - y_f[b]) ** 2).sum(dim=(-2, -1))
        best = torch.topk(d, k=min(j0, d.numel()), largest=False)
        out_i.append(cand[best.indices])
        out_d.append(best.values)
    return torch.stack(out_i), torch.stack(out_d)


def expected_discrepancy(model: ResidueForwardModel, coords: Tensor, images: Tensor, ctf: Tensor,
                         support: Tensor, eta: float = 2.0 / 3.0, bin_factor: int = 1
                         ) -> tuple[Tensor, Tensor]:
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
    bin_factor : int
        ``images`` and ``ctf`` are on the grid binned by this factor.

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
    pred = model(x, support.reshape(b * j0, 3, 3), c, bin_factor).reshape(b, j0, *images.shape[1:])
    d = ((pred - images[:, None]) ** 2).sum(dim=(-2, -1))  # (b, J0)
    w = esl_weights(d, eta)
    return (w * d).sum(dim=-1), w
