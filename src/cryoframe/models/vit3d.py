"""3D vision transformers: APT-ViT (shift-equivariant tokens) and a plain ViT for contrast.

Positional encoding of APT-ViT: a learnable *circular relative* attention bias ``b_h(Δ)`` per
head, indexed by the token-grid difference ``Δ = (i − j) mod grid``. Tokens come from the phase
APT selected, so positions are measured relative to that phase, and an integer shift of the input
only rolls the token grid circularly (:mod:`cryoframe.models.apt`); ``b(Δ)`` is unchanged by a
circular roll, so attention is equivariant to it and the globally pooled embedding is invariant.
An absolute (learned or sinusoidal) embedding would break this; a non-circular relative bias
would break it at the box edge. Subtomograms are boxed around a particle and APT already treats
the box as periodic, so the circular metric costs nothing the tokenizer had not assumed.

Blocks are pre-norm (``x + Attn(LN x)``, ``x + MLP(LN x)``); attention uses
``F.scaled_dot_product_attention``. ``forward_features`` returns normalised tokens,
``forward_head`` pools (mean over tokens) and applies the optional linear head.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryoframe.models.apt import APTEmbed
from cryoframe.models.polyphase import check_divisible, patchify

__all__ = [
    "Attention",
    "Block",
    "circular_offset_index",
    "APTViT3d",
    "ViT3d",
]


def circular_offset_index(grid: tuple[int, int, int]) -> Tensor:
    """Index of the circular offset ``(i − j) mod grid`` for every token pair.

    Returns
    -------
    Tensor
        `(N, N)` int64 in ``[0, N)``, ``N = prod(grid)`` (C-ordered tokens).
    """
    coords = torch.tensor(list(itertools.product(*[range(g) for g in grid])))  # (N, 3)
    diff = (coords[:, None, :] - coords[None, :, :]) % torch.tensor(grid)
    return (diff[..., 0] * grid[1] + diff[..., 1]) * grid[2] + diff[..., 2]


class Attention(nn.Module):
    """Multi-head self-attention with an optional additive bias `(H, N, N)`."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """`(B, N, E)` → `(B, N, E)`."""
        b, n, e = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, e // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, e/H)
        mask = None if bias is None else bias.to(q.dtype)[None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, e))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """`(B, N, E)` → `(B, N, E)`."""
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class APTViT3d(nn.Module):
    """APT-ViT encoder for single subtomograms.

    Parameters
    ----------
    volume_size, patch_size, in_channels : int
        Box side, patch side (voxels) and channels.
    embed_dim, depth, num_heads : int
        Width ``E``, number of blocks, heads.
    mlp_ratio : float
        MLP hidden width / ``E``.
    num_classes : int
        Size of the linear head (0: ``forward`` returns the pooled embedding).
    temperature : float
        Gumbel-softmax temperature of the APT selection.
    selector_scalar, selector_vector, selector_tensor : int
        Steerable selector size.
    """

    def __init__(self, volume_size: int = 32, patch_size: int = 8, in_channels: int = 1,
                 embed_dim: int = 128, depth: int = 4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, num_classes: int = 0, temperature: float = 1.0,
                 selector_scalar: int = 2, selector_vector: int = 1,
                 selector_tensor: int = 1, prior_gain: float = 4.0,
                 selector_learned: bool = True, learned_gain: float = 0.5) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_features = embed_dim
        self.in_channels = in_channels
        self.volume_size = volume_size
        self.embed = APTEmbed(volume_size, patch_size, in_channels, embed_dim, temperature,
                              selector_scalar, selector_vector, selector_tensor, prior_gain,
                              selector_learned, learned_gain)
        n = self.embed.num_tokens
        self.register_buffer("rel_index", circular_offset_index(self.embed.grid),
                             persistent=False)
        self.rel_bias = nn.Parameter(torch.randn(num_heads, n) * 0.02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.last_selection: Tensor | None = None

    def attention_bias(self) -> Tensor:
        """`(heads, N, N)` circular relative position bias."""
        return self.rel_bias[:, self.rel_index]

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        """Random inputs of the right shape (used by the registry contract test)."""
        s = self.volume_size
        return (torch.randn(batch, self.in_channels, s, s, s),)

    def forward_features(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, N, E)` normalised tokens."""
        out = self.embed(x)
        self.last_selection = out.phase.detach()
        h = out.tokens
        bias = self.attention_bias()
        for blk in self.blocks:
            h = blk(h, bias)
        return self.norm(h)

    def phase_logits(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, n_phases)` selection logits."""
        return self.embed.phase_logits(x)

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        """`(B, N, E)` → pooled `(B, E)` (``pre_logits``) or head output `(B, K)`."""
        pooled = tokens.mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, K)` (or `(B, E)` without a head)."""
        return self.forward_head(self.forward_features(x))

    def embed_single(self, x: Tensor) -> Tensor:
        """`(B, 1, L, L, L)` standardised volumes → `(B, E)` pooled embeddings (inference)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)


class ViT3d(nn.Module):
    """Plain 3D ViT (fixed patch grid at phase 0, learned absolute position embedding).

    The same blocks and pooling as :class:`APTViT3d` at the same size; the reference that shows
    what APT buys (BENCHMARKS.md ``equivariance``).
    """

    def __init__(self, volume_size: int = 32, patch_size: int = 8, in_channels: int = 1,
                 embed_dim: int = 128, depth: int = 4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, num_classes: int = 0) -> None:
        super().__init__()
        self.patch = (patch_size,) * 3
        check_divisible((volume_size,) * 3, self.patch)
        self.in_channels = in_channels
        self.volume_size = volume_size
        self.embed_dim = embed_dim
        self.num_features = embed_dim
        n = (volume_size // patch_size) ** 3
        self.proj = nn.Linear(in_channels * patch_size**3, embed_dim)
        self.pos_embed = nn.Parameter(torch.randn(1, n, embed_dim) * 0.02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        """Random inputs of the right shape (used by the registry contract test)."""
        s = self.volume_size
        return (torch.randn(batch, self.in_channels, s, s, s),)

    def forward_features(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, N, E)` normalised tokens."""
        expected = (self.in_channels, self.volume_size, self.volume_size, self.volume_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"ViT3d expects (B, {expected}) volumes, got {tuple(x.shape)}")
        h = self.proj(patchify(x, self.patch)) + self.pos_embed
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        """`(B, N, E)` → pooled `(B, E)` (``pre_logits``) or head output `(B, K)`."""
        pooled = tokens.mean(dim=1)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, K)` (or `(B, E)` without a head)."""
        return self.forward_head(self.forward_features(x))
