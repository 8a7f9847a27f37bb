"""A content-driven, noise-stable phase score for APT: the circular centroid of low-passed energy.

The learned selector of 000 §2.2 scores each of the ``s³`` polyphase components by the mean of an
invariant local feature over the component's voxels. On 32³ boxes with patch 8 those means differ
by about 1 % between phases (logit std 0.005–0.008 measured on random-init, NRCL-trained and
supervised models alike), so the argmax follows the noise and a Gumbel draw is nearly uniform:
patches were cut at a random offset in training and a noise-chosen one at inference.

This score instead asks *where the particle is*. The volume is low-passed (Gaussian, σ in voxels),
its energy ``e = (x̃ − mean x̃)²`` (the same for either contrast sign) is summarised by the
circular centroid along each axis, ``c_a = N_a/(2π) · arg Σ_v e(v) exp(2πi v_a / N_a)``, and
phase ``k`` gets the von Mises score

    score(k) = Σ_a cos(2π (k_a − c_a + s_a/2) / s_a),

largest for the phase whose patch grid puts the particle's centroid at a patch centre.

Symmetries (exact up to floating point, as APT requires): an integer circular shift ``g`` moves
``c`` to ``c + g`` and so permutes the scores as the phases permute; a 90° rotation about voxel
``N // 2`` maps index ``v`` to ``−v mod N`` (plus an axis swap) and ``c`` to ``−c``, so the scores
follow the phase permutation ``k → −k mod s``. Stability: ``c`` is a ratio of the lowest Fourier
coefficients of the energy, which carry most of a particle's power, so two noise draws of the same
subtomogram pick the same phase far more often than the learned score's near-chance agreement
(measured in ``benchmarks/results/encoder-probe.json``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cryoframe.models.polyphase import phase_offsets

__all__ = ["CentroidPhasePrior", "circular_centroid_px"]


def circular_centroid_px(energy: Tensor) -> Tensor:
    """`(B, D, H, W)` non-negative weights → `(B, 3)` circular centroids (zyx voxels, in [0, N))."""
    out = []
    for axis in range(3):
        n = energy.shape[1 + axis]
        marginal = energy.sum(dim=[1 + a for a in range(3) if a != axis])  # (B, n)
        ang = 2 * math.pi * torch.arange(n, dtype=energy.dtype, device=energy.device) / n
        re = (marginal * torch.cos(ang)).sum(-1)
        im = (marginal * torch.sin(ang)).sum(-1)
        out.append(torch.remainder(torch.atan2(im, re) * n / (2 * math.pi), n))
    return torch.stack(out, dim=-1)


class CentroidPhasePrior(nn.Module):
    """Phase scores from the low-passed energy's circular centroid (module docstring).

    Parameters
    ----------
    patch : tuple of int
        ``(s_D, s_H, s_W)``.
    sigma_px : float
        Gaussian low-pass width in voxels (2 voxels = 20 Å at 10 Å/voxel).
    """

    def __init__(self, patch: tuple[int, int, int], sigma_px: float = 2.0) -> None:
        super().__init__()
        self.patch = tuple(int(s) for s in patch)
        self.sigma_px = float(sigma_px)
        self.register_buffer("offsets", phase_offsets(self.patch).float(), persistent=False)

    def centroid(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, 3)` centroid of the low-passed energy (voxels)."""
        shape = tuple(x.shape[-3:])
        v = x.float().mean(dim=1)
        spec = torch.fft.rfftn(v, dim=(-3, -2, -1))
        fz = torch.fft.fftfreq(shape[0], device=x.device)
        fy = torch.fft.fftfreq(shape[1], device=x.device)
        fx = torch.fft.rfftfreq(shape[2], device=x.device)
        f2 = fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2
        spec = spec * torch.exp(-2 * (math.pi * self.sigma_px) ** 2 * f2)
        low = torch.fft.irfftn(spec, s=shape, dim=(-3, -2, -1))
        energy = (low - low.mean(dim=(-3, -2, -1), keepdim=True)) ** 2
        return circular_centroid_px(energy)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, D, H, W)` → `(B, s_D·s_H·s_W)` scores in ``[−3, 3]`` (no gradient to x)."""
        with torch.no_grad():
            c = self.centroid(x)  # (B, 3)
            s = torch.tensor(self.patch, dtype=c.dtype, device=c.device)
            d = self.offsets[None] - c[:, None, :] + s / 2  # (B, P, 3)
            return torch.cos(2 * math.pi * d / s).sum(-1).to(x.dtype)
