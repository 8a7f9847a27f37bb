"""Batched augmentations of particle images for MoCo v3 (003 Methods: random crop, intensity
jitter, blur, solarisation, rotation).

All operations act on normalised images `(b, 1, h, w)` (background mean 0, σ 1) and draw from a
``torch.Generator``:

* rotation by a uniform in-plane angle and random resized crop (area fraction in ``crop_scale``,
  random position inside the image), fused into one bilinear resampling; outside values are 0,
  the background mean;
* intensity jitter: ``x ← c·x + β`` with contrast ``c ∈ [1 − j, 1 + j]`` and offset
  ``β ∈ [−j/2, j/2]`` (in units of the background σ);
* Gaussian blur with σ uniform in ``blur_sigma_px`` (applied in Fourier space);
* optional fresh white noise (σ uniform in ``noise_sigma``, background-σ units), applied before
  the blur;
* solarisation: values above the image mean are reflected about it (the [0, 1] rule
  ``x ≥ ½ → 1 − x`` is a reflection about ½).

:func:`two_views` applies the asymmetric MoCo v3 / BYOL recipe (view 1: blur always, no
solarisation; view 2: blur with probability 0.1, solarisation with probability 0.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ParticleAugment", "two_views"]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


@dataclass(frozen=True)
class ParticleAugment:
    """One augmentation pipeline (parameters as in the module docstring)."""

    crop_scale: tuple[float, float] = (0.5, 1.0)
    rotate: bool = True
    jitter: float = 0.4
    jitter_p: float = 0.8
    blur_p: float = 1.0
    blur_sigma_px: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    noise_sigma: tuple[float, float] = (0.0, 0.0)

    def crop_rotate(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        """Random resized crop + in-plane rotation of `(b, 1, h, w)` to the same size."""
        b = x.shape[0]
        side = torch.sqrt(_uniform(b, *self.crop_scale, gen))  # crop side / image side
        theta = _uniform(b, 0.0, 2 * math.pi, gen) if self.rotate else torch.zeros(b)
        # crop centre anywhere that keeps the (unrotated) window inside the image
        ty = (1 - side) * _uniform(b, -1.0, 1.0, gen)
        tx = (1 - side) * _uniform(b, -1.0, 1.0, gen)
        c, s = torch.cos(theta), torch.sin(theta)
        aff = torch.zeros(b, 2, 3)
        aff[:, 0, 0], aff[:, 0, 1] = side * c, -side * s
        aff[:, 1, 0], aff[:, 1, 1] = side * s, side * c
        aff[:, 0, 2], aff[:, 1, 2] = tx, ty
        grid = F.affine_grid(aff.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def __call__(self, x: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """Augment a batch `(b, 1, h, w)`; returns a new tensor of the same shape."""
        if x.ndim == 3:
            x = x[:, None]
        b, _, h, w = x.shape
        x = self.crop_rotate(x, gen)
        on = (torch.rand(b, generator=gen) < self.jitter_p).to(x.dtype)
        contrast = 1.0 + on * _uniform(b, -self.jitter, self.jitter, gen)
        offset = on * _uniform(b, -self.jitter / 2, self.jitter / 2, gen)
        x = x * contrast[:, None, None, None] + offset[:, None, None, None]
        if self.noise_sigma[1] > 0:  # fresh white noise per view (σ in background-σ units)
            sig = _uniform(b, *self.noise_sigma, gen)
            x = x + sig[:, None, None, None] * torch.randn(x.shape, generator=gen)
        blur = torch.rand(b, generator=gen) < self.blur_p
        if bool(blur.any()):
            sigma = _uniform(b, *self.blur_sigma_px, gen) * blur.to(x.dtype)
            fy = torch.fft.fftfreq(h)[:, None]
            fx = torch.fft.rfftfreq(w)[None, :]
            filt = torch.exp(-2 * math.pi ** 2 * sigma[:, None, None, None] ** 2
                             * (fy ** 2 + fx ** 2))
            x = torch.fft.irfft2(torch.fft.rfft2(x) * filt, s=(h, w))
        sol = torch.rand(b, generator=gen) < self.solarize_p
        if bool(sol.any()):
            m = x.mean(dim=(-2, -1), keepdim=True)
            folded = torch.where(x > m, 2 * m - x, x)
            x = torch.where(sol[:, None, None, None], folded, x)
        return x


_VIEW1 = ParticleAugment(blur_p=1.0, solarize_p=0.0)
_VIEW2 = ParticleAugment(blur_p=0.1, solarize_p=0.2)


def two_views(x: Tensor, gen: torch.Generator | None = None,
              noise_sigma_max: float = 0.0) -> tuple[Tensor, Tensor]:
    """Two asymmetrically augmented views of a batch `(b, 1, h, w)` (MoCo v3 recipe).

    ``noise_sigma_max > 0`` adds independent white noise (σ uniform in [0, max], in units of the
    background σ) to each view before blurring, so the two views no longer share one noise
    realisation that the encoder could match instead of the particle.
    """
    if noise_sigma_max > 0:
        v1 = ParticleAugment(blur_p=1.0, solarize_p=0.0, noise_sigma=(0.0, noise_sigma_max))
        v2 = ParticleAugment(blur_p=0.1, solarize_p=0.2, noise_sigma=(0.0, noise_sigma_max))
        return v1(x, gen), v2(x, gen)
    return _VIEW1(x, gen), _VIEW2(x, gen)
