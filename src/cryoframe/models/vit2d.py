"""2D Vision Transformer for particle images (the Cryo-IEF backbone), in plain PyTorch.

``forward_features`` returns the token sequence (class token first) after the final LayerNorm;
``forward_head`` pools it (class token) and applies the head. Position embeddings are the fixed
2D sine-cosine embeddings used by MoCo v3. Registered configurations:

- ``particle_vit_cpu``: 64² input, patch 8 (64 tokens), width 128, 4 blocks, 8 heads of 16,
  MLP ratio 2 — the CPU default, sized for ≥ 476 images/s inference on 2 shared cores (MLP
  ratio 4 measured ≈ 230 images/s on one thread, ratio 2 ≈ 500).
- ``particle_vit_b14``: the paper's ViT-B/14 (224² input, patch 14, width 768, 12 blocks,
  12 heads) for GPU users.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryoframe._errors import InputError

__all__ = ["ViT2d", "ParticleRanker", "VIT2D_CONFIGS", "create_vit2d"]

#: Keyword arguments of each registered configuration.
VIT2D_CONFIGS: dict[str, dict[str, Any]] = {
    "particle_vit_cpu": dict(img_size=64, patch_size=8, embed_dim=128, depth=4, num_heads=8,
                             mlp_ratio=2.0),
    "particle_vit_b14": dict(img_size=224, patch_size=14, embed_dim=768, depth=12, num_heads=12,
                             mlp_ratio=4.0),
}


def _sincos_2d(grid: int, dim: int) -> Tensor:
    """Fixed 2D sine-cosine position embedding `(grid², dim)` (MoCo v3)."""
    if dim % 4:
        raise InputError(f"embed_dim {dim} must be divisible by 4", field="embed_dim")
    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float32),
                          torch.arange(grid, dtype=torch.float32), indexing="ij")
    omega = 1.0 / (10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    oy = y.reshape(-1, 1) * omega[None]
    ox = x.reshape(-1, 1) * omega[None]
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise InputError(f"embed_dim {dim} not divisible by num_heads {num_heads}",
                             field="num_heads")
        self.h = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (b, h, n, d/h)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT2d(nn.Module):
    """Plain 2D ViT.

    Parameters
    ----------
    img_size : int
        Input side length in pixels (square images).
    patch_size : int
        Patch side; ``img_size`` must be a multiple.
    in_chans : int
        Input channels (1 for particle images).
    embed_dim, depth, num_heads : int
        Width, number of blocks, attention heads.
    mlp_ratio : float
        Hidden width of the block MLPs relative to ``embed_dim``.
    num_classes : int
        Head outputs; 0 gives an identity head (features).
    """

    def __init__(self, img_size: int = 64, patch_size: int = 8, in_chans: int = 1,
                 embed_dim: int = 128, depth: int = 4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, num_classes: int = 0) -> None:
        super().__init__()
        if img_size % patch_size:
            raise InputError(f"img_size {img_size} is not a multiple of patch_size {patch_size}",
                             field="patch_size")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.embed_dim = self.num_features = embed_dim
        grid = img_size // patch_size
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        pos = torch.cat([torch.zeros(1, embed_dim), _sincos_2d(grid, embed_dim)])
        self.register_buffer("pos_embed", pos[None], persistent=False)
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head: nn.Module = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()
        self._init()

    def _init(self) -> None:
        nn.init.normal_(self.cls_token, std=1e-6)
        w = self.patch_embed.weight
        val = math.sqrt(6.0 / float(3 * w.shape[1] * w.shape[2] * w.shape[3] + w.shape[0]))
        nn.init.uniform_(w, -val, val)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def example_inputs(self, batch: int = 2) -> tuple[Tensor]:
        """Random inputs of the right shape, `(batch, in_chans, img_size, img_size)`."""
        return (torch.randn(batch, self.in_chans, self.img_size, self.img_size),)

    def reset_head(self, num_classes: int) -> None:
        """Replace the head by a fresh linear layer with ``num_classes`` outputs (0: identity)."""
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """`(b, c, h, w)` or `(b, h, w)` images → `(b, 1 + n_patches, embed_dim)` tokens."""
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[-2:] != (self.img_size,) * 2:
            raise InputError(
                f"input of shape {tuple(x.shape)}", field="images",
                expected=f"(b, {self.in_chans}, {self.img_size}, {self.img_size})")
        t = self.patch_embed(x).flatten(2).transpose(1, 2)  # (b, n, d)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        """Class-token pooling `(b, 1 + n, d)` → `(b, d)`, then the head unless ``pre_logits``."""
        pooled = tokens[:, 0]
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """`(b, c, h, w)` → head output `(b, num_classes)` (or features when no head)."""
        return self.forward_head(self.forward_features(x))


class ParticleRanker(nn.Module):
    """CryoRanker: encoder + linear head with two logits ``[z₀, z₁]`` (junk, good); the score
    is ``softmax(z)₁`` (003, eq. 7).
    """

    def __init__(self, encoder: ViT2d) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, 2)

    def forward(self, x: Tensor) -> Tensor:
        """`(b, 1, s, s)` or `(b, s, s)` → logits `(b, 2)`."""
        feats = self.encoder.forward_head(self.encoder.forward_features(x), pre_logits=True)
        return self.head(feats)

    @torch.inference_mode()
    def score(self, x: Tensor) -> Tensor:
        """`(b, s, s)` or `(b, 1, s, s)` → scores `(b,)` in [0, 1]."""
        return self(x).softmax(dim=-1)[:, 1]


def create_vit2d(name: str = "particle_vit_cpu", **overrides: Any) -> ViT2d:
    """Build a registered 2D ViT configuration with keyword overrides."""
    if name not in VIT2D_CONFIGS:
        raise InputError(f"unknown 2D ViT '{name}'", field="model",
                         expected=f"one of {sorted(VIT2D_CONFIGS)}")
    return ViT2d(**{**VIT2D_CONFIGS[name], **overrides})


def _register() -> None:
    try:
        from cryoframe.models._registry import register_model
    except ImportError:  # registry not available: create_vit2d still works
        return
    for _name in VIT2D_CONFIGS:
        register_model(_name, lambda _n=_name, **kw: create_vit2d(_n, **kw))


_register()
