"""Pair encoder of 000 §3.1: two APT embedding modules, fusion, transformer blocks, heads.

The two subtomograms of a pair ``(X_1, X)`` are tokenised by their own :class:`APTEmbed`
(separate weights, each with its own phase selection). Fusion: each token stream gets a
learned segment embedding and the streams are concatenated into one sequence of ``2N`` tokens,
so every block attends within and across the two volumes (what the transformation head needs).
Attention carries a circular relative bias with separate tables for same-volume and
cross-volume pairs, so a common integer shift of both inputs leaves the pooled features
unchanged (see :mod:`cryoframe.models.vit3d`).

Outputs: ``forward_features(x1, x2)`` → `(B, 2N, E)` tokens; ``forward_head`` pools the two
halves separately and concatenates them, `(B, 2E)`; ``embed(x1, x2)`` is that pooled vector
(the representation NRCL trains); ``transform(...)`` and ``classify(...)`` apply the 3-layer MLP
heads. ``embed_single(x)`` encodes one subtomogram as the pair ``(x, x)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cryoframe.models.apt import APTEmbed
from cryoframe.models.heads import ClassificationHead, RotationRepr, TransformHead
from cryoframe.models.vit3d import Block, circular_offset_index

__all__ = ["APTPairEncoder"]


class APTPairEncoder(nn.Module):
    """APT-ViT pair encoder with transformation and classification heads.

    Parameters
    ----------
    volume_size, patch_size, in_channels : int
        Box side, patch side (voxels), channels.
    embed_dim, depth, num_heads : int
        Token width, blocks, heads.
    mlp_ratio : float
        MLP hidden width / ``embed_dim``.
    rotation : {"euler", "6d", "9d"}
        Rotation output of the transformation head.
    num_classes : int
        Classes of the classification head (0: no head).
    head_hidden : int
        Hidden width of both 3-layer MLP heads.
    temperature : float
        Gumbel-softmax temperature of both APT modules.
    selector_scalar, selector_vector, selector_tensor : int
        Steerable selector size.
    """

    def __init__(self, volume_size: int = 32, patch_size: int = 8, in_channels: int = 1,
                 embed_dim: int = 128, depth: int = 4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, rotation: RotationRepr = "euler", num_classes: int = 0,
                 head_hidden: int = 256, temperature: float = 1.0, selector_scalar: int = 2,
                 selector_vector: int = 1, selector_tensor: int = 1) -> None:
        super().__init__()
        #: constructor arguments (rebuild with ``APTPairEncoder(**config)``; e3nn's compiled
        #: kernels cannot be deep-copied, so copies are rebuilt and loaded instead)
        self.config = dict(volume_size=volume_size, patch_size=patch_size,
                           in_channels=in_channels, embed_dim=embed_dim, depth=depth,
                           num_heads=num_heads, mlp_ratio=mlp_ratio, rotation=rotation,
                           num_classes=num_classes, head_hidden=head_hidden,
                           temperature=temperature, selector_scalar=selector_scalar,
                           selector_vector=selector_vector, selector_tensor=selector_tensor)
        self.volume_size = volume_size
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.num_features = 2 * embed_dim
        kw = dict(volume_size=volume_size, patch_size=patch_size, in_channels=in_channels,
                  embed_dim=embed_dim, temperature=temperature, selector_scalar=selector_scalar,
                  selector_vector=selector_vector, selector_tensor=selector_tensor)
        self.embed_a = APTEmbed(**kw)
        self.embed_b = APTEmbed(**kw)
        n = self.embed_a.num_tokens
        self.n_tokens = n
        self.segment = nn.Parameter(torch.randn(2, embed_dim) * 0.02)
        idx = circular_offset_index(self.embed_a.grid)  # (N, N)
        full = torch.cat([torch.cat([idx, idx + n], 1), torch.cat([idx + n, idx], 1)], 0)
        self.register_buffer("rel_index", full, persistent=False)  # (2N, 2N) in [0, 2N)
        self.rel_bias = nn.Parameter(torch.randn(num_heads, 2 * n) * 0.02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.transform_head = TransformHead(2 * embed_dim, rotation, head_hidden)
        self.class_head = (ClassificationHead(2 * embed_dim, num_classes, head_hidden)
                           if num_classes > 0 else None)

    def copy_frozen(self) -> APTPairEncoder:
        """A new encoder with the same config and weights and no gradients (momentum target)."""
        other = APTPairEncoder(**self.config).to(next(self.parameters()).device)
        other.load_state_dict(self.state_dict())
        for p in other.parameters():
            p.requires_grad_(False)
        return other

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        """Random pair inputs of the right shape (used by the registry contract test)."""
        s = self.volume_size
        shape = (batch, self.in_channels, s, s, s)
        return torch.randn(shape), torch.randn(shape)

    def forward_features(self, x1: Tensor, x2: Tensor) -> Tensor:
        """`(B, C, D, H, W)` × 2 → `(B, 2N, E)` normalised fused tokens."""
        a = self.embed_a(x1).tokens + self.segment[0]
        b = self.embed_b(x2).tokens + self.segment[1]
        h = torch.cat([a, b], dim=1)
        bias = self.rel_bias[:, self.rel_index]
        for blk in self.blocks:
            h = blk(h, bias)
        return self.norm(h)

    def forward_head(self, tokens: Tensor, pre_logits: bool = True) -> Tensor:
        """`(B, 2N, E)` → `(B, 2E)` (mean of each volume's tokens, concatenated).

        With ``pre_logits=False`` and a classification head, returns class logits.
        """
        n = self.n_tokens
        pooled = torch.cat([tokens[:, :n].mean(1), tokens[:, n:].mean(1)], dim=-1)
        if pre_logits or self.class_head is None:
            return pooled
        return self.class_head(pooled)

    def embed(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Pooled pair representation `(B, 2E)`."""
        return self.forward_head(self.forward_features(x1, x2))

    def embed_views(self, views: list[Tensor], ref: Tensor) -> list[Tensor]:
        """Pooled features of the pairs ``(v, ref)`` for several views ``v`` of one batch.

        The reference is tokenised once (one phase selection shared by all pairs) and all pairs
        go through the blocks as one batch; equal to ``[embed(v, ref) for v in views]`` in
        evaluation mode.

        Parameters
        ----------
        views : list of Tensor
            Each `(B, C, D, H, W)`.
        ref : Tensor
            `(B, C, D, H, W)` second subtomogram of every pair.

        Returns
        -------
        list of Tensor
            One `(B, 2E)` per view.
        """
        b = ref.shape[0]
        tok_b = self.embed_b(ref).tokens + self.segment[1]  # (B, N, E)
        tok_a = self.embed_a(torch.cat(views)).tokens + self.segment[0]  # (V B, N, E)
        h = torch.cat([tok_a, tok_b.repeat(len(views), 1, 1)], dim=1)
        bias = self.rel_bias[:, self.rel_index]
        for blk in self.blocks:
            h = blk(h, bias)
        pooled = self.forward_head(self.norm(h))
        return list(pooled.split(b))

    def embed_single(self, x: Tensor) -> Tensor:
        """Representation `(B, 2E)` of single subtomograms, encoded as the pair ``(x, x)``."""
        return self.embed(x, x)

    def transform(self, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        """Predicted transform taking ``x2`` to ``x1`` (see :class:`TransformHead`)."""
        return self.transform_head(self.embed(x1, x2))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Pooled features `(B, 2E)` (class logits if a classification head exists)."""
        return self.forward_head(self.forward_features(x1, x2), pre_logits=False)
