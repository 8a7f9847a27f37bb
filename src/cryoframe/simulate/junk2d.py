"""Junk particle images with graded quality scores, for training and testing particle rankers.

Each image is a clean scene (projection of the density plus the defect) imaged through the same
CTF as good particles, noised with the noise level of good particles of the same structure
(σ² = mean Var(good clean image) / SNR, so junk is not re-normalised to look like signal), and
Fourier-cropped to the output box. Scores are fixed functions of the defect's severity, in [0, 1]:

==============  =====================================================  =======================
kind            defect (severity drawn uniformly)                      quality score
==============  =====================================================  =======================
good            centred particle                                       1.0
empty_ice       no particle, smooth ice-thickness texture              0.0
carbon_edge     carbon film covering a fraction c ∈ [0.2, 0.9] of the  0.35 (1 − c) ∈ [0.04, 0.28]
                box (dense half-plane with a soft edge), particle too
contamination   1–3 dense blobs (2–5× particle peak), area fraction a  0.5 (1 − min(1, 3a))
overlap         second particle at distance d ∈ [0.3, 1.1] diameters   clip(0.15 + 0.6 d, 0, 1)
off_centre      particle shifted by r ∈ [0.12, 0.6] box (truncated)    clip(0.95 − 1.6 r, 0, 1)
blur            Gaussian blur σ = s · box, s ∈ [0.01, 0.1]             clip(1.05 − 10 s, 0, 1)
==============  =====================================================  =======================

So good particles score 1, empty ice and carbon score ≤ 0.3 (label 0 at α = 0.7), and the
overlap / off-centre / blur series cross both thresholds (graded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import random_rotations
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.simulate.particles2d import (
    ParticleSimConfig,
    _apply_ctf,
    longest_diameter_angstrom,
    project_volume,
)

__all__ = ["JUNK_KINDS", "KINDS", "JunkSet", "simulate_junk_set"]

JUNK_KINDS = ("empty_ice", "carbon_edge", "contamination", "overlap", "off_centre", "blur")
KINDS = ("good",) + JUNK_KINDS


@dataclass
class JunkSet:
    """Images with ground-truth quality.

    Attributes
    ----------
    images : Tensor
        `(n, b, b)` float32 noisy images.
    scores : Tensor
        `(n,)` quality score in [0, 1].
    kinds : Tensor
        `(n,)` int64 index into :data:`KINDS`.
    pixel_size_angstrom : float
        Output pixel size.
    """

    images: torch.Tensor
    scores: torch.Tensor
    kinds: torch.Tensor
    pixel_size_angstrom: float


def _u(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _yx_grid(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(b, dtype=torch.float32) - b // 2
    return torch.meshgrid(c, c, indexing="ij")


def _smooth_noise(n: int, b: int, sigma_px: float, gen: torch.Generator) -> torch.Tensor:
    """Unit-variance Gaussian random field with Gaussian correlation length ``sigma_px``."""
    x = torch.randn(n, b, b, generator=gen)
    f = torch.fft.fftfreq(b)
    f2 = f[:, None] ** 2 + torch.fft.rfftfreq(b)[None, :] ** 2
    y = torch.fft.irfft2(torch.fft.rfft2(x) * torch.exp(-2 * math.pi ** 2 * sigma_px ** 2 * f2),
                         s=(b, b))
    return y / y.std(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def _gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    b = x.shape[-1]
    f = torch.fft.fftfreq(b)
    f2 = f[:, None] ** 2 + torch.fft.rfftfreq(b)[None, :] ** 2
    filt = torch.exp(-2 * math.pi ** 2 * sigma_px[:, None, None] ** 2 * f2)
    return torch.fft.irfft2(torch.fft.rfft2(x) * filt, s=(b, b))


def simulate_junk_set(
    volume: np.ndarray | torch.Tensor,
    voxel_size_angstrom: float,
    n_per_kind: int,
    config: ParticleSimConfig | None = None,
    generator: torch.Generator | None = None,
    kinds: tuple[str, ...] = KINDS,
    n_good: int | None = None,
) -> JunkSet:
    """Simulate good and junk particle images of one density with graded quality scores.

    Parameters
    ----------
    volume : array
        `(d, d, d)` density (z, y, x), centred.
    voxel_size_angstrom : float
        Voxel size in Å.
    n_per_kind : int
        Images per junk kind.
    config : ParticleSimConfig, optional
        Box, pixel size (None: 1.6 × diameter), CTF and SNR of good particles.
    generator : torch.Generator, optional
        Source of every random draw.
    kinds : tuple of str
        Subset of :data:`KINDS` to generate.
    n_good : int, optional
        Number of good particles (default ``n_per_kind``).

    Returns
    -------
    JunkSet
    """
    cfg = config or ParticleSimConfig()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InputError(f"unknown junk kinds {bad}", field="kinds", expected=f"any of {KINDS}")
    vol = np.asarray(volume.detach().cpu() if torch.is_tensor(volume) else volume, np.float32)
    box = cfg.box_size_px
    diam = longest_diameter_angstrom(vol, voxel_size_angstrom)
    pix = float(cfg.pixel_size_angstrom or cfg.box_factor * diam / box)
    os_ = cfg.oversample
    b, p = box * os_, pix / os_

    def proj(n: int, shifts_angstrom: torch.Tensor | None = None) -> torch.Tensor:
        rots = random_rotations(n, generator=gen)
        return project_volume(vol, rots, voxel_size_angstrom, b, p, shifts_angstrom)

    yy, xx = _yx_grid(b)
    scenes, scores, kind_ids, blur_sigma = [], [], [], []
    peak = None
    for kind in kinds:
        n = n_good if (kind == "good" and n_good is not None) else n_per_kind
        if n <= 0:
            continue
        sig = torch.zeros(n)
        if kind == "good":
            img, s = proj(n), torch.ones(n)
        elif kind == "empty_ice":
            img, s = torch.zeros(n, b, b), torch.zeros(n)
        elif kind == "carbon_edge":
            c = _u(n, 0.2, 0.9, gen)
            theta = _u(n, 0, 2 * math.pi, gen)
            # signed distance to the edge; the carbon side covers fraction c of the box
            t = (yy[None] * torch.sin(theta)[:, None, None] + xx[None] * torch.cos(theta)[:, None, None])
            thr = torch.stack([torch.quantile(t[i].reshape(-1), float(1 - c[i])) for i in range(n)])
            edge = torch.sigmoid((t - thr[:, None, None]) / (0.01 * b))
            img = (proj(n), edge)  # type: ignore[assignment]  # scaled once the peak is known
            s = 0.35 * (1 - c)
        elif kind == "contamination":
            img = proj(n)
            blobs = torch.zeros(n, b, b)
            area = torch.zeros(n)
            n_blobs = torch.randint(1, 4, (n,), generator=gen)
            for j in range(3):
                on = (n_blobs > j).float()
                r = _u(n, 0.06, 0.2, gen) * b
                cy, cx = _u(n, -0.45, 0.45, gen) * b, _u(n, -0.45, 0.45, gen) * b
                d = torch.sqrt((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                disc = torch.sigmoid((r[:, None, None] - d) / 1.5) * on[:, None, None]
                blobs = torch.maximum(blobs, disc * _u(n, 2.0, 5.0, gen)[:, None, None])
                area += on * math.pi * r ** 2 / b ** 2
            img = (img, blobs)  # type: ignore[assignment]
            s = 0.5 * (1 - torch.clamp(3 * area, max=1.0))
        elif kind == "overlap":
            d = _u(n, 0.3, 1.1, gen)
            ang = _u(n, 0, 2 * math.pi, gen)
            sh = torch.stack([torch.sin(ang), torch.cos(ang)], -1) * (d * diam)[:, None]
            img = proj(n) + proj(n, sh)
            s = torch.clamp(0.15 + 0.6 * d, 0, 1)
        elif kind == "off_centre":
            r = _u(n, 0.12, 0.6, gen)
            ang = _u(n, 0, 2 * math.pi, gen)
            sh = torch.stack([torch.sin(ang), torch.cos(ang)], -1) * (r * box * pix)[:, None]
            img = proj(n, sh)
            s = torch.clamp(0.95 - 1.6 * r, 0, 1)
        else:  # blur
            sb = _u(n, 0.01, 0.1, gen)
            img, s = proj(n), torch.clamp(1.05 - 10 * sb, 0, 1)
            sig = sb * b
        scenes.append((kind, img))
        scores.append(s)
        kind_ids.append(torch.full((n,), KINDS.index(kind), dtype=torch.int64))
        blur_sigma.append(sig)
    # scale of the particle signal, used for carbon, contamination and ice amplitudes
    ref = next((im for k, im in scenes if k == "good"), None)
    if ref is None:
        ref = proj(max(8, n_per_kind // 4))
    peak = float(ref.amax(dim=(-2, -1)).mean())
    std = float(ref.std(dim=(-2, -1)).mean())
    imgs = []
    for kind, img in scenes:
        if kind == "carbon_edge":
            im, edge = img
            n = im.shape[0]
            tex = 1.0 + 0.1 * _smooth_noise(n, b, 0.05 * b, gen)
            img = im + 1.5 * peak * edge * tex
        elif kind == "contamination":
            im, blobs = img
            img = im + peak * blobs
        elif kind == "empty_ice":
            img = 0.3 * std * _smooth_noise(img.shape[0], b, 0.08 * b, gen)
        imgs.append(img)
    scene = torch.cat(imgs)
    n_all = scene.shape[0]
    kinds_t = torch.cat(kind_ids)
    score_t = torch.cat(scores).clamp(0, 1)
    sig_t = torch.cat(blur_sigma)
    if cfg.ctf:
        du = _u(n_all, cfg.defocus_min_angstrom, cfg.defocus_max_angstrom, gen)
        dv = du - cfg.astigmatism_max_angstrom * torch.rand(n_all, generator=gen)
        ang = _u(n_all, 0, 180, gen)
        scene = torch.cat([_apply_ctf(scene[i:i + 256], p, du[i:i + 256], dv[i:i + 256],
                                      ang[i:i + 256], cfg) for i in range(0, n_all, 256)])
    blurred = sig_t > 0
    if blurred.any():
        scene[blurred] = _gaussian_blur(scene[blurred], sig_t[blurred])
    clean = fourier_crop(scene, (box, box)) if os_ > 1 else scene
    if cfg.snr is not None:
        good_like = kinds_t == KINDS.index("good")
        ref_var = clean[good_like].var(dim=(-2, -1)).mean() if good_like.any() else \
            torch.tensor(std ** 2 * 0.1)
        noise = torch.randn(scene.shape, generator=gen)
        noise = fourier_crop(noise, (box, box)) if os_ > 1 else noise
        noise = noise / noise.std(dim=(-2, -1), keepdim=True)
        clean = combine_signal_noise(clean, noise, cfg.snr,
                                     signal_var=ref_var.expand(clean.shape[0]), noise_var=1.0)
    return JunkSet(images=clean.to(torch.float32), scores=score_t, kinds=kinds_t,
                   pixel_size_angstrom=pix)
