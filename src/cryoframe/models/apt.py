"""Adaptive phase tokenization (APT, 000 §2.2 Algorithm 1) for 3D volumes.

:class:`APTEmbed` scores all ``s_D·s_H·s_W`` polyphase components with the steerable selector
f_θ (:mod:`cryoframe.models.steerable`), picks one phase — straight-through Gumbel-softmax
(temperature ``t``) in training, ``argmax`` at inference — and cuts the volume into patches on
that phase's partition (the patches of ``roll(X, -k*)``), which a linear patch embedding turns
into tokens.

Shift equivariance (App. B Thm. 3): for an integer circular shift ``g`` the logits permute, the
argmax moves to the shifted phase, and the tokens of the shifted input are the tokens of the
original circularly shifted on the token grid (by ``⌊(k*+g)/s⌋``). A model whose token mixing
depends only on circular token differences and that pools globally is therefore exactly
shift-invariant.

Gradient path (straight-through): the forward pass uses the hard one-hot ``y`` of the selected
phase, ``y = y_hard − sg(y_soft) + y_soft``; the tokens are multiplied by ``y[k*]`` (= 1 in the
forward pass), so ``∂L/∂y_soft[k*] = ⟨∂L/∂tokens, tokens⟩`` reaches f_θ through the softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryoframe.models.phase_prior import CentroidPhasePrior
from cryoframe.models.polyphase import check_divisible, patchify, phase_offsets, roll_to_phase
from cryoframe.models.steerable import PhaseSelector

__all__ = ["APTEmbed", "APTOutput"]


@dataclass
class APTOutput:
    """What :meth:`APTEmbed.forward` returns.

    Attributes
    ----------
    tokens : Tensor
        `(B, N, E)` patch tokens of the selected phase, C-ordered on the `(D/s, H/s, W/s)` grid.
    logits : Tensor
        `(B, n_phases)` selection logits (invariant features of each phase component).
    phase : Tensor
        `(B,)` int64 index of the selected phase.
    """

    tokens: Tensor
    logits: Tensor
    phase: Tensor


class APTEmbed(nn.Module):
    """Polyphase decomposition + steerable phase selection + patch embedding.

    Parameters
    ----------
    volume_size : int
        Box side in voxels (cubic boxes), a multiple of ``patch_size``.
    patch_size : int
        Patch side ``s`` (the same along z, y, x).
    in_channels : int
        Input channels.
    embed_dim : int
        Token width ``E``.
    temperature : float
        Gumbel-softmax temperature ``t`` used in training mode.
    selector_scalar, selector_vector, selector_tensor : int
        Multiplicities of the ``0e``/``1o``/``2e`` steerable filters of the learned selector.
    prior_gain : float
        Weight ``κ`` of the centroid phase score
        (:class:`~cryoframe.models.phase_prior.CentroidPhasePrior`); 0 disables it.
    selector_learned : bool
        Add the learned steerable score f_θ (z-scored over phases, times ``learned_gain``).
        Its raw logits are nearly flat (std ≈ 0.005 over 512 phases), so alone it cannot
        select; as a residual on the prior it can move the choice where training finds it useful.
    learned_gain : float
        Scale of the z-scored learned score.
    """

    def __init__(self, volume_size: int = 32, patch_size: int = 8, in_channels: int = 1,
                 embed_dim: int = 128, temperature: float = 1.0, selector_scalar: int = 2,
                 selector_vector: int = 1, selector_tensor: int = 1, prior_gain: float = 4.0,
                 selector_learned: bool = True, learned_gain: float = 0.5) -> None:
        super().__init__()
        self.volume_size = int(volume_size)
        self.patch = (int(patch_size),) * 3
        check_divisible((self.volume_size,) * 3, self.patch)
        self.grid = tuple(self.volume_size // s for s in self.patch)
        self.in_channels = in_channels
        self.temperature = float(temperature)
        if not selector_learned and prior_gain <= 0:
            raise ValueError("APTEmbed needs the centroid prior, the learned selector or both")
        self.prior_gain = float(prior_gain)
        self.learned_gain = float(learned_gain)
        self.prior = CentroidPhasePrior(self.patch) if prior_gain > 0 else None
        self.selector = PhaseSelector(self.patch, in_channels, n_scalar=selector_scalar,
                                      n_vector=selector_vector,
                                      n_tensor=selector_tensor) if selector_learned else None
        self.proj = nn.Linear(in_channels * patch_size**3, embed_dim)
        self.register_buffer("offsets", phase_offsets(self.patch), persistent=False)

    @property
    def num_tokens(self) -> int:
        """Tokens per volume ``(D/s)(H/s)(W/s)``."""
        return self.grid[0] * self.grid[1] * self.grid[2]

    def select(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Pick one phase per sample.

        Returns
        -------
        phase : Tensor
            `(B,)` selected indices.
        weight : Tensor
            `(B,)` straight-through weight of the selected phase (1 in the forward pass).
        """
        if self.training and torch.is_grad_enabled():
            y = F.gumbel_softmax(logits.float(), tau=self.temperature, hard=True)  # (B, P)
            phase = y.argmax(dim=-1)
            weight = y.gather(1, phase[:, None])[:, 0]
            return phase, weight.to(logits.dtype)
        if self.training:
            g = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-10, 1 - 1e-7)))
            phase = (logits + g).argmax(dim=-1)
        else:
            phase = logits.argmax(dim=-1)
        return phase, torch.ones(phase.shape, dtype=logits.dtype, device=logits.device)

    def phase_logits(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, n_phases)` selection logits: ``κ·prior + g·z(f_θ)``."""
        out = 0.0
        if self.prior is not None:
            out = self.prior_gain * self.prior(x)
        if self.selector is not None:
            raw = self.selector(x)
            sd = raw.std(dim=-1, keepdim=True).clamp_min(1e-6)
            out = out + self.learned_gain * (raw - raw.mean(dim=-1, keepdim=True)) / sd
        return out

    def forward(self, x: Tensor) -> APTOutput:
        """Tokenise volumes on their selected phase.

        Parameters
        ----------
        x : Tensor
            `(B, C, D, H, W)` volumes (``D = H = W = volume_size``).
        """
        expected = (self.in_channels, self.volume_size, self.volume_size, self.volume_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"APTEmbed expects (B, {expected}) volumes, got {tuple(x.shape)}")
        logits = self.phase_logits(x)  # (B, P)
        phase, weight = self.select(logits)
        rolled = roll_to_phase(x, self.offsets[phase])  # (B, C, D, H, W)
        patches = patchify(rolled, self.patch)  # (B, N, C s³)
        tokens = self.proj(patches) * weight[:, None, None]
        return APTOutput(tokens=tokens, logits=logits, phase=phase)
