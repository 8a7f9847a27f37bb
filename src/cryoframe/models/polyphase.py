"""3D polyphase decomposition Ψ on a circular grid (000 §2.2 eq. 1, App. B Def. 4).

For a volume ``X`` of shape ``(B, C, D, H, W)`` and patch size ``s = (s_D, s_H, s_W)`` the phase
component ``k = (p, q, r)`` is the sub-sampled grid ``X[..., p::s_D, q::s_H, r::s_W]``; there are
``s_D·s_H·s_W`` of them. Phase ``k`` also names a patch partition: the non-overlapping
``s``-sized patches whose first voxel lies on component ``k``, i.e. the patches of
``roll(X, -k)``. Everything here is circular (indices taken modulo the box size), which is what
makes an integer shift of the input a permutation of phases plus a circular shift of tokens.

Phase indices are flattened C-order: ``index = (p·s_H + q)·s_W + r``.
"""

from __future__ import annotations

from collections.abc import Callable

import einops
import torch
from torch import Tensor

__all__ = [
    "check_divisible",
    "phase_offsets",
    "polyphase_components",
    "roll_to_phase",
    "patchify",
    "phase_permutation",
    "rot90_about_center",
]


def check_divisible(shape_zyx: tuple[int, int, int], patch: tuple[int, int, int]) -> None:
    """Raise ``ValueError`` unless every box side is a multiple of the patch side."""
    for n, s in zip(shape_zyx, patch, strict=True):
        if s <= 0 or n % s != 0:
            raise ValueError(
                f"box {tuple(shape_zyx)} is not divisible by patch {tuple(patch)}; "
                "APT needs a whole number of patches per side"
            )


def phase_offsets(patch: tuple[int, int, int], device: torch.device | None = None) -> Tensor:
    """All phase offsets ``(p, q, r)`` in flattened C order.

    Returns
    -------
    Tensor
        `(s_D·s_H·s_W, 3)` int64 offsets in voxels, zyx.
    """
    grids = torch.meshgrid(*[torch.arange(s, device=device) for s in patch], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=-1)


def polyphase_components(x: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """Split a volume into all its polyphase components.

    Parameters
    ----------
    x : Tensor
        `(B, C, D, H, W)` volumes.
    patch : tuple of int
        ``(s_D, s_H, s_W)``.

    Returns
    -------
    Tensor
        `(B, C, s_D·s_H·s_W, D/s_D, H/s_H, W/s_W)`; component ``k`` equals
        ``x[..., p::s_D, q::s_H, r::s_W]``.
    """
    check_divisible(tuple(x.shape[-3:]), patch)
    sd, sh, sw = patch
    return einops.rearrange(
        x, "b c (i p) (j q) (k r) -> b c (p q r) i j k", p=sd, q=sh, r=sw
    )


def roll_to_phase(x: Tensor, offsets_zyx: Tensor) -> Tensor:
    """Circularly roll each volume so that its phase ``offsets`` lands on the origin.

    ``out[b, :, z, y, x] = x[b, :, (z + p_b) % D, (y + q_b) % H, (x + r_b) % W]``.

    Parameters
    ----------
    x : Tensor
        `(B, C, D, H, W)` volumes.
    offsets_zyx : Tensor
        `(B, 3)` integer phase offsets (voxels).

    Returns
    -------
    Tensor
        `(B, C, D, H, W)` rolled volumes (a gather, differentiable in ``x``).
    """
    b, c, d, h, w = x.shape
    off = offsets_zyx.to(device=x.device, dtype=torch.long)
    iz = (torch.arange(d, device=x.device)[None] + off[:, 0:1]) % d  # (B, D)
    iy = (torch.arange(h, device=x.device)[None] + off[:, 1:2]) % h  # (B, H)
    ix = (torch.arange(w, device=x.device)[None] + off[:, 2:3]) % w  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    xt = x.permute(0, 2, 3, 4, 1)  # (B, D, H, W, C)
    out = xt[bi, iz[:, :, None, None], iy[:, None, :, None], ix[:, None, None, :]]
    return out.permute(0, 4, 1, 2, 3)


def patchify(x: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """Cut volumes into non-overlapping patches starting at the origin.

    Returns
    -------
    Tensor
        `(B, N, C·s_D·s_H·s_W)` with ``N = (D/s_D)(H/s_H)(W/s_W)`` tokens in C order.
    """
    check_divisible(tuple(x.shape[-3:]), patch)
    sd, sh, sw = patch
    return einops.rearrange(
        x, "b c (i p) (j q) (k r) -> b (i j k) (c p q r)", p=sd, q=sh, r=sw
    )


def phase_permutation(
    shape_zyx: tuple[int, int, int],
    patch: tuple[int, int, int],
    transform: Callable[[Tensor], Tensor],
) -> Tensor:
    """Where each phase goes under an index-permuting transform (shift, 90° rotation).

    The transform is applied to a volume whose voxels hold their own phase index; the
    transformed component ``k'`` then holds a single source phase ``k`` and ``perm[k] = k'``.

    Parameters
    ----------
    shape_zyx : tuple of int
        Box shape.
    patch : tuple of int
        Patch size.
    transform : callable
        Maps a `(1, 1, D, H, W)` tensor to a tensor of the same shape by permuting voxels.

    Returns
    -------
    Tensor
        `(n_phases,)` int64 permutation.

    Raises
    ------
    ValueError
        If the transform mixes phases (e.g. a rotation about a centre that does not map the
        phase lattice onto itself).
    """
    check_divisible(shape_zyx, patch)
    d, h, w = shape_zyx
    idx = torch.stack(
        torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij")
    )  # (3, D, H, W)
    ph = (idx[0] % patch[0] * patch[1] + idx[1] % patch[1]) * patch[2] + idx[2] % patch[2]
    moved = transform(ph[None, None].to(torch.float64))
    comps = polyphase_components(moved, patch)[0, 0]  # (n_phases, i, j, k)
    flat = comps.reshape(comps.shape[0], -1)
    if not torch.all(flat == flat[:, :1]):
        raise ValueError("transform does not map polyphase components onto components")
    src = flat[:, 0].round().long()  # component k' holds source phase src[k']
    perm = torch.empty_like(src)
    perm[src] = torch.arange(src.numel())
    return perm


def rot90_about_center(x: Tensor, k: int = 1, dims: tuple[int, int] = (-2, -1)) -> Tensor:
    """Exact 90° rotation(s) of a cubic grid about the centre voxel ``n // 2`` (circular).

    The project convention rotates about voxel ``n // 2`` (docs/architecture.md);
    ``torch.rot90`` rotates about ``(n − 1) / 2``, so each quarter turn is followed by a roll of
    one voxel along the axis it reversed (``i → −i mod n``; the voxel wrapped around is the
    one outside the centred box, as for any even box).

    Parameters
    ----------
    x : Tensor
        `(..., D, H, W)` volumes.
    k : int
        Number of quarter turns from ``dims[0]`` towards ``dims[1]``.
    dims : tuple of int
        The two axes spanning the rotation plane.
    """
    out = x
    for _ in range(k % 4):
        out = torch.roll(torch.rot90(out, 1, dims=dims), 1, dims=(dims[0],))
    return out
