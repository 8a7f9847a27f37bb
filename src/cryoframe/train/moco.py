"""MoCo v3 for 2D particle images (Cryo-IEF pretraining, 003 Methods).

Online branch: backbone → 3-layer projector → 2-layer predictor; momentum branch: a momentum
copy of backbone + projector (:mod:`cryoframe.train.momentum`), ``θ_k ← m θ_k + (1 − m) θ_q``
with m = 0.99 (optionally raised to 1 along a cosine). Every hidden MLP layer is
Linear → BatchNorm → ReLU, the last Linear is followed by a BatchNorm without affine parameters
(MoCo v3). The loss is the symmetrised InfoNCE of eq. 6 with in-batch negatives,
``L = ctr(q₁, k₂) + ctr(q₂, k₁)``, each ``ctr`` scaled by ``2τ`` as in MoCo v3 (τ = 0.5 in the
paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryoframe.train.momentum import ema_update, make_momentum_copy

__all__ = ["build_mlp", "infonce_loss", "MoCoV3"]


def build_mlp(num_layers: int, in_dim: int, hidden_dim: int, out_dim: int,
              last_bn: bool = True) -> nn.Sequential:
    """MoCo v3 MLP: ``num_layers`` Linear layers, BN + ReLU between, optional final BN."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        d_in = in_dim if i == 0 else hidden_dim
        d_out = out_dim if i == num_layers - 1 else hidden_dim
        layers.append(nn.Linear(d_in, d_out, bias=False))
        if i < num_layers - 1:
            layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(d_out, affine=False))
    return nn.Sequential(*layers)


def infonce_loss(q: Tensor, k: Tensor, temperature: float = 0.5, scale: bool = True) -> Tensor:
    """Eq. 6 with in-batch negatives: row i of ``k`` is the positive of ``q[i]``.

    Parameters
    ----------
    q, k : Tensor
        `(b, e)` embeddings (L2-normalised here).
    temperature : float
        τ.
    scale : bool
        Multiply by ``2τ`` (MoCo v3), which keeps gradient magnitudes independent of τ.

    Returns
    -------
    Tensor
        Scalar mean over the batch. Collapsed embeddings give ``log(b)`` (×2τ).
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    logits = q @ k.T / temperature  # (b, b)
    labels = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(logits, labels)
    return loss * (2.0 * temperature) if scale else loss


class MoCoV3(nn.Module):
    """MoCo v3 wrapper around a backbone with ``forward_features`` / ``forward_head``.

    Parameters
    ----------
    backbone : nn.Module
        Encoder; ``forward_head(forward_features(x), pre_logits=True)`` gives `(b, d)` features.
    feature_dim : int
        ``d``.
    proj_dim : int
        Output size of projector and predictor (256 in the paper).
    mlp_dim : int
        Hidden size of projector and predictor (4096 in the paper).
    temperature : float
        τ (0.5 in the paper).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, proj_dim: int = 256,
                 mlp_dim: int = 4096, temperature: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = build_mlp(3, feature_dim, mlp_dim, proj_dim, last_bn=True)
        self.predictor = build_mlp(2, proj_dim, mlp_dim, proj_dim, last_bn=False)
        self.temperature = temperature
        self.momentum_backbone = make_momentum_copy(backbone)
        self.momentum_projector = make_momentum_copy(self.projector)

    def _features(self, net: nn.Module, x: Tensor) -> Tensor:
        return net.forward_head(net.forward_features(x), pre_logits=True)

    @torch.no_grad()
    def update_momentum(self, momentum: float) -> None:
        """EMA update of the momentum branch (backbone and projector)."""
        ema_update(self.momentum_backbone, self.backbone, momentum)
        ema_update(self.momentum_projector, self.projector, momentum)

    def forward(self, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        """Symmetrised loss of two augmented views `(b, 1, h, w)` each."""
        q1 = self.predictor(self.projector(self._features(self.backbone, x1)))
        q2 = self.predictor(self.projector(self._features(self.backbone, x2)))
        with torch.no_grad():
            k1 = self.momentum_projector(self._features(self.momentum_backbone, x1))
            k2 = self.momentum_projector(self._features(self.momentum_backbone, x2))
        loss = infonce_loss(q1, k2, self.temperature) + infonce_loss(q2, k1, self.temperature)
        return {"loss": loss}
