"""Noise-resilient contrastive learning (NRCL, 000 §2.3, Algorithm 2 of App. D).

Networks: the base encoder ``f_q`` = pair encoder + projector + predictor, and the momentum
encoder ``f_k`` = copies of the pair encoder + projector updated by EMA (m = 0.99). Per batch,
with the views of :func:`cryoframe.train.augment3d.make_nrcl_views`::

    q1, q2 = f_q(X1, X), f_q(X2, X')
    k1, k2 = f_k(X1, X), f_k(X2, X')
    k_clean, k_noisy = f_k(X1_clean, X), f_k(X1_noisy, X)

``X'`` is a second instance of the sample (own rotation, own noise), so the positive pairs
``(q1, k2)`` and ``(q2, k1)`` share no volume (:func:`cryoframe.train.augment3d.make_nrcl_views`).
    L_instance = L_sym(q1, k2) + λ_W L_wass(q1, k2) + L_sym(q2, k1) + λ_W L_wass(q2, k1)
    L_noise = L_InfoNCE(q1, k_clean, k_noisy)
    L = L_instance + L_noise (+ λ_T L_T)

``L_T`` is the branch of Fig. 1b supervised by the known transform ``T`` (``X1 = T X``): the
transformation head on the base encoder's features of ``(X1, X)`` predicts ``T``;
``L_T = ‖R̂ − R_T‖_F² + λ_shift ‖t̂ − t_T‖²`` (voxels). ``λ_T = 0`` gives Algorithm 2 alone.

All pairs sharing a second volume are encoded in one pass (:meth:`APTPairEncoder.embed_views`), which
tokenises ``X`` once per encoder and step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cryoframe.models.heads import rotation_loss
from cryoframe.models.pair import APTPairEncoder
from cryoframe.train.losses_infonce import noise_infonce_loss
from cryoframe.train.losses_sinkhorn import sinkhorn_wasserstein_loss
from cryoframe.train.losses_sym import rince_loss, sym_loss
from cryoframe.train.momentum import ema_update, make_momentum_copy

__all__ = ["NRCL", "projection_mlp"]


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 3) -> nn.Sequential:
    """MoCo v3-style MLP (LayerNorm instead of BatchNorm: batch-size and DDP independent)."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU()]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class NRCL(nn.Module):
    """Base and momentum networks plus the NRCL objective.

    Parameters
    ----------
    encoder : APTPairEncoder
        Pair encoder (its transformation head serves the ``L_T`` branch).
    proj_hidden, proj_dim : int
        Projector / predictor widths.
    temperature : float
        τ of L_sym and InfoNCE (0.1 in the paper).
    c : float
        Weight parameter of L_sym.
    lambda_w : float
        Weight λ_W of the Sinkhorn term.
    sinkhorn_eps : float
        Entropic ε of the Sinkhorn term (squared-distance units of unit vectors).
    sinkhorn_iters : int
        Log-domain Sinkhorn iterations.
    lambda_transform : float
        Weight λ_T of the transform branch (0 disables it).
    lambda_shift : float
        Weight of the translation error (voxels²) inside ``L_T``.
    sym_variant : {"eq9", "rince"}
        ``"eq9"``: L_sym exactly as eq. 9 (weight ``c``); ``"rince"``: the RINCE loss the paper
        builds on (exponent ``q = c``, density weight ``rince_lambda``), see
        :mod:`cryoframe.train.losses_sym` for why.
    rince_lambda : float
        λ of RINCE.
    """

    def __init__(self, encoder: APTPairEncoder, proj_hidden: int = 512, proj_dim: int = 128,
                 temperature: float = 0.1, c: float = 0.1, lambda_w: float = 1.0,
                 sinkhorn_eps: float = 0.05, sinkhorn_iters: int = 50,
                 lambda_transform: float = 1.0, lambda_shift: float = 0.1,
                 sym_variant: str = "eq9", rince_lambda: float = 0.01) -> None:
        super().__init__()
        self.encoder = encoder
        feat = encoder.num_features
        self.projector = projection_mlp(feat, proj_hidden, proj_dim, 3)
        self.predictor = projection_mlp(proj_dim, proj_hidden, proj_dim, 2)
        self.momentum_encoder = encoder.copy_frozen()  # e3nn kernels cannot be deep-copied
        self.momentum_projector = make_momentum_copy(self.projector)
        self.temperature = temperature
        self.c = c
        self.lambda_w = lambda_w
        self.sinkhorn_eps = sinkhorn_eps
        self.sinkhorn_iters = sinkhorn_iters
        self.lambda_transform = lambda_transform
        self.lambda_shift = lambda_shift
        if sym_variant not in ("eq9", "rince"):
            raise ValueError(f"sym_variant must be 'eq9' or 'rince', got {sym_variant!r}")
        self.sym_variant = sym_variant
        self.rince_lambda = rince_lambda

    def _sym(self, q: Tensor, k: Tensor) -> Tensor:
        if self.sym_variant == "rince":
            return rince_loss(q, k, self.temperature, self.c, self.rince_lambda)
        return sym_loss(q, k, self.temperature, self.c)

    @torch.no_grad()
    def update_momentum(self, momentum: float) -> None:
        """EMA step ``θ_k ← m θ_k + (1 − m) θ_q`` of encoder and projector."""
        ema_update(self.momentum_encoder, self.encoder, momentum)
        ema_update(self.momentum_projector, self.projector, momentum)

    def forward(self, views: dict[str, Tensor]) -> dict[str, Tensor]:
        """NRCL loss of one batch.

        Parameters
        ----------
        views : dict
            Output of :func:`~cryoframe.train.augment3d.make_nrcl_views`.

        Returns
        -------
        dict
            ``loss`` (scalar to minimise) and the detached terms ``l_sym``, ``l_wass``,
            ``l_noise``, ``l_transform``, ``rot_err_deg`` (mean geodesic error of the
            transform branch).
        """
        x, x1, x2, x_b = views["x"], views["x1"], views["x2"], views["x_b"]
        (f1,) = self.encoder.embed_views([x1], x)
        (f2,) = self.encoder.embed_views([x2], x_b)
        q1 = self.predictor(self.projector(f1))
        q2 = self.predictor(self.projector(f2))
        with torch.no_grad():
            k1, k_clean, k_noisy = (self.momentum_projector(f) for f in
                                    self.momentum_encoder.embed_views(
                                        [x1, views["x1_clean"], views["x1_noisy"]], x))
            k2 = self.momentum_projector(self.momentum_encoder.embed_views([x2], x_b)[0])
        tau = self.temperature
        l_sym = self._sym(q1, k2) + self._sym(q2, k1)
        l_wass = (sinkhorn_wasserstein_loss(q1.float(), k2.float(), self.sinkhorn_eps,
                                            self.sinkhorn_iters)
                  + sinkhorn_wasserstein_loss(q2.float(), k1.float(), self.sinkhorn_eps,
                                              self.sinkhorn_iters))
        l_noise = noise_infonce_loss(q1, k_clean, k_noisy, tau)
        loss = l_sym + self.lambda_w * l_wass + l_noise
        out = {"l_sym": l_sym.detach(), "l_wass": l_wass.detach(), "l_noise": l_noise.detach()}
        if self.lambda_transform > 0:
            pred = self.encoder.transform_head(f1)
            r_true = views["rotation"].to(pred["rotation"].dtype)
            l_rot = rotation_loss(pred["rotation"], r_true)
            l_shift = (pred["shift_zyx_px"] - views["shift_zyx_px"].to(f1.dtype)).pow(2).sum(-1)
            l_t = l_rot + self.lambda_shift * l_shift.mean()
            loss = loss + self.lambda_transform * l_t
            with torch.no_grad():
                cos = ((pred["rotation"] * r_true).sum((-2, -1)) - 1) / 2
                out["rot_err_deg"] = torch.rad2deg(torch.acos(cos.clamp(-1, 1))).mean()
            out["l_transform"] = l_t.detach()
        out["loss"] = loss
        return out
