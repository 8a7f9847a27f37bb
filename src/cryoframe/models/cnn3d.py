"""Residual 3D CNN encoder for subtomograms (the CPU-efficient backbone of the registry).

Stem ``3³`` conv, then three residual stages that halve the grid and double the width
(32³ → 16³ → 8³ → 4³ for the default box). The embedding concatenates the global average of the
last two stages (mid-level shape and whole-particle features; ``num_features`` =
``2·w + 4·w`` ... with ``w`` the stage-1 width × 2). Batch normalisation, ReLU.

The same ``forward_features`` / ``forward_head`` / ``embed_single`` interface as the ViTs, so the
training loops, the benchmark suites and the CLI treat the backbones alike. Not equivariant by
construction: invariance to the particle's pose is learned from uniformly rotated training data.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ResBlock3d", "CNN3dEncoder"]


class ResBlock3d(nn.Module):
    """``conv-BN-ReLU-conv-BN`` + projection shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(c_out)
        self.short = nn.Identity() if (stride == 1 and c_in == c_out) else nn.Sequential(
            nn.Conv3d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm3d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C_in, D, H, W)` → `(B, C_out, D/s, H/s, W/s)`."""
        h = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.short(x))


class CNN3dEncoder(nn.Module):
    """Residual 3D CNN encoder.

    Parameters
    ----------
    volume_size : int
        Box side (voxels); any size divisible by 8 works, 32 is the trained default.
    in_channels : int
        Input channels.
    width : int
        Stem width ``w``; the stages have ``2w``, ``4w``, ``8w`` channels.
    num_classes : int
        Size of an optional linear head on the embedding (0: ``forward`` returns the embedding).
    """

    def __init__(self, volume_size: int = 32, in_channels: int = 1, width: int = 24,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.volume_size = int(volume_size)
        self.in_channels = int(in_channels)
        w = int(width)
        self.stem = nn.Sequential(nn.Conv3d(in_channels, w, 3, padding=1, bias=False),
                                  nn.BatchNorm3d(w), nn.ReLU(inplace=True))
        self.stage1 = ResBlock3d(w, 2 * w, stride=2)
        self.stage2 = ResBlock3d(2 * w, 4 * w, stride=2)
        self.stage3 = ResBlock3d(4 * w, 8 * w, stride=2)
        self.num_features = 12 * w
        self.embed_dim = self.num_features
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        """Random inputs of the right shape (used by the registry contract test)."""
        s = self.volume_size
        return (torch.randn(batch, self.in_channels, s, s, s),)

    def forward_features(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, num_features)` pooled multi-scale features."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"CNN3dEncoder expects (B, {self.in_channels}, D, H, W), "
                             f"got {tuple(x.shape)}")
        h2 = self.stage2(self.stage1(self.stem(x)))
        h3 = self.stage3(h2)
        return torch.cat([h2.mean(dim=(-3, -2, -1)), h3.mean(dim=(-3, -2, -1))], dim=1)

    def forward_head(self, feats: Tensor, pre_logits: bool = False) -> Tensor:
        """`(B, F)` → `(B, F)` (``pre_logits``) or head output `(B, K)`."""
        return feats if pre_logits else self.head(feats)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, K)` (or `(B, F)` without a head)."""
        return self.forward_head(self.forward_features(x))

    def embed_single(self, x: Tensor) -> Tensor:
        """`(B, 1, L, L, L)` standardised volumes → `(B, F)` embeddings (inference interface)."""
        return self.forward_features(x)
