"""Output heads: 3-layer MLPs for classification and for the relative transformation of a pair.

Rotation outputs (000 App. B.4, Table 6): ``"euler"`` (3 numbers, read as RELION ZYZ angles in
radians and turned into a matrix with :func:`cryoframe.geometry.euler.relion_euler_to_matrix`),
``"6d"`` (Gram–Schmidt, :func:`cryoframe.geometry.rotations.rot6d_to_matrix`) and ``"9d"``
(SVD projection, :func:`cryoframe.geometry.rotations.svd_orthogonalize`). The paper reports
Euler angles as the best for alignment; 6D/9D are continuous and available for comparison.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryoframe.geometry.euler import relion_euler_to_matrix
from cryoframe.geometry.rotations import rot6d_to_matrix, svd_orthogonalize

__all__ = [
    "MLP3", "ClassificationHead", "TransformHead", "ROTATION_DIMS", "params_to_matrix",
    "rotation_loss", "CosineClassifier",
]

RotationRepr = Literal["euler", "6d", "9d"]
ROTATION_DIMS: dict[str, int] = {"euler": 3, "6d": 6, "9d": 9}


class MLP3(nn.Module):
    """Three linear layers with GELU in between (``in → hidden → hidden → out``)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """`(B, in_dim)` → `(B, out_dim)`."""
        return self.net(x)


class ClassificationHead(MLP3):
    """3-layer MLP classifier on pooled embeddings (000 §3.2): `(B, E)` → `(B, num_classes)` logits."""

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 256,
                 dropout: float = 0.0) -> None:
        super().__init__(in_dim, hidden_dim, num_classes, dropout)


class TransformHead(nn.Module):
    """3-layer MLP predicting a rigid transform (rotation + translation) from pair features.

    Parameters
    ----------
    in_dim : int
        Feature width.
    rotation : {"euler", "6d", "9d"}
        Rotation parameterisation.
    hidden_dim : int
        MLP width.
    """

    def __init__(self, in_dim: int, rotation: RotationRepr = "euler", hidden_dim: int = 256) -> None:
        super().__init__()
        if rotation not in ROTATION_DIMS:
            raise ValueError(f"rotation must be one of {sorted(ROTATION_DIMS)}, got {rotation!r}")
        self.rotation = rotation
        self.mlp = MLP3(in_dim, hidden_dim, ROTATION_DIMS[rotation] + 3)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predict the transform.

        Parameters
        ----------
        features : Tensor
            `(B, in_dim)`.

        Returns
        -------
        dict
            ``"rotation"`` `(B, 3, 3)` active zyx rotation matrix, ``"rotation_params"`` the raw
            `(B, 3|6|9)` output, ``"shift_zyx_px"`` `(B, 3)` translation in voxels.
        """
        out = self.mlp(features)
        k = ROTATION_DIMS[self.rotation]
        params, shift = out[:, :k], out[:, k:]
        return {"rotation": params_to_matrix(params, self.rotation), "rotation_params": params,
                "shift_zyx_px": shift}


def params_to_matrix(params: Tensor, rotation: RotationRepr) -> Tensor:
    """Raw head output `(B, 3|6|9)` → `(B, 3, 3)` rotation matrices (differentiable)."""
    if rotation == "euler":
        deg = params * (180.0 / math.pi)
        return relion_euler_to_matrix(deg[:, 0], deg[:, 1], deg[:, 2]).to(params.dtype)
    if rotation == "6d":
        return rot6d_to_matrix(params).to(params.dtype)
    if rotation == "9d":
        return svd_orthogonalize(params).to(params.dtype)
    raise ValueError(f"unknown rotation representation {rotation!r}")


def rotation_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared Frobenius distance ``‖R̂ − R‖_F²`` (= 8 sin²(θ/2)), smooth and bounded."""
    return ((pred - target) ** 2).sum(dim=(-2, -1)).mean()


class CosineClassifier(nn.Module):
    """Normalised-softmax classifier with an additive cosine margin (CosFace).

    ``logits = s · (cos(w_c, z) − m·[c = y])``: classes are compared by angle only, so the
    embedding learns a metric (what a k-NN or linear probe on unseen classes uses) rather than
    feature norms. ``m`` is applied only when labels are given (training).

    Parameters
    ----------
    in_features, n_classes : int
        Embedding width and number of classes.
    scale, margin : float
        ``s`` and ``m``.
    """

    def __init__(self, in_features: int, n_classes: int, scale: float = 16.0,
                 margin: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, in_features) / math.sqrt(in_features))
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """`(B, F)` embeddings (+ `(B,)` labels) → `(B, n_classes)` logits."""
        cos = F.normalize(z, dim=-1) @ F.normalize(self.weight, dim=-1).T
        if labels is not None and self.margin:
            cos = cos - self.margin * F.one_hot(labels, cos.shape[-1]).to(cos.dtype)
        return self.scale * cos
