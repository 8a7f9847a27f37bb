"""Posterior alignment: a learned correlation head over a coarse-to-fine SO(3) grid.

For a pair (particle ``p``, reference ``r``), every candidate rotation ``R`` scores all
translations at once with a wedge-constrained, shell-weighted normalised cross-correlation
(one inverse FFT, as in :mod:`cryoframe.tasks.fft_align`)::

    cc_R(t) = Σ_k M(k) w(|k|) conj(R̂_R(k)) P̂(k) e^{2πi k·t} / sqrt(Σ M w |P̂|² · Σ M w |R̂_R|²)

where ``M`` is the Fourier region both volumes sample and ``w`` the per-shell weights of the
learned head (:class:`cryoframe.models.correlation_head.SpectralCorrelationHead`), read from the
pair's own power spectra. The head's concentrations ``κ`` turn scores into a posterior::

    p(R | p, r) ∝ prior(R) · mean_t exp(κ · cc_R(t)),     p(t | R) ∝ exp(κ_t · cc_R(t))

Reference rotations are never interpolated in real space: the reference's spectrum, cropped
to the level's box and zero-padded twice (gridding-corrected), is sampled at ``Rᵀ k`` for the
band's coefficients only.

Search (rotation output: a distribution over a grid on SO(3), summarised by its chordal mean):

1. coarse: the whole range (``local``: a ``coarse_step_deg`` grid within ``range_deg`` of the
   identity; ``global``: all of SO(3)) at ``coarse_size``; translations over the whole range by
   one inverse FFT per candidate, which also gives each candidate's posterior-mean translation;
2. fine: two 3 × 3 × 3 grids of small rotations (steps ``0.6 × coarse step`` then half of it) at
   ``fine_size``, each centred on the previous posterior mean, the translation marginalised over
   the 27 voxels around the coarse estimate (sums over the band, no FFT). In the global range the
   fine stage runs around the ``k`` most probable coarse cells, ``k`` being the number of cells
   that hold ``candidate_mass`` of the coarse posterior (at most ``max_candidates``): a confident
   coarse posterior buys one candidate, an uncertain one several;
3. translation: the posterior mean over a 5³ lattice of half-voxel steps around the estimate at
   the final rotation; with the coarse posterior-mean estimate it starts from, a flat posterior
   falls back towards the prior's centre instead of a noise peak.

4. optional (``refine_start_deg``): a classical local Fourier refinement around that pose, the
   full-band, unweighted, wedge-constrained correlation of :class:`FFTAligner` maximised by its
   pattern search (four steps, the first ``refine_start_deg``, each half the last) with a sub-voxel translation
   peak fit. The posterior's shell weights trade precision for robustness (they were learned on
   pairs of noisy boxes and stop at ``fine_size``'s band); against a high-SNR reference
   (averaging), the correlation maximum at full band is the more precise estimate, and starting
   it at the posterior's pose keeps the posterior's robustness
   (``benchmarks/experiments/posterior_fft_refine.jsonl``).

The result's ``scores`` hold the confidence: the resultant length of the coarse rotation
posterior (1: all mass on one grid point; about 0 for a posterior spread over SO(3)).

Pose convention: ``particle ≈ shift(rotate(reference, R), t)``, as for
:class:`cryoframe.tasks.fft_align.FFTAligner`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry.grids import radial_frequency
from cryoframe.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_distance_deg,
    so3_grid,
    svd_orthogonalize,
)
from cryoframe.models.correlation_head import SpectralCorrelationHead
from cryoframe.tasks.fft_align import (
    AlignResult,
    FFTAligner,
    _crop_rfft,
    _low_frequency_index,
    _rfft_weights,
    _signed_index,
)

__all__ = ["PosteriorAligner", "AVERAGING_REFINE_START_DEG", "PairTerms", "shell_log_power", "local_grid", "offset_grid",
           "shift_lattice", "chordal_mean", "FINE_SHIFTS", "FINAL_SHIFTS"]

_DIMS = (-3, -2, -1)


@dataclass
class _Level:
    size: int        # m: the volumes are Fourier-cropped to m³
    corr_size: int   # the correlation over translations is sampled on a corr_size³ grid
    allowed: Tensor  # (A,) flat indices of the corr grid's translations within range
    shifts: Tensor   # (A, 3) those translations in full-size voxels (zyx)
    band_flat: Tensor   # (Kb,) flat rfft indices of the band's coefficients
    band_k: Tensor      # (Kb, 3) their integer frequencies (zyx)
    band_k_xyz: Tensor  # (Kb, 3) the same in grid_sample's (x, y, z) order
    band_sign: Tensor   # (Kb,) (−1)^(kz+ky+kx): phase of a rotation about the box centre
    band_shell: Tensor  # (Kb,) integer shell (index into the head's weights)
    band_mult: Tensor   # (Kb,) multiplicity of the coefficient in the full spectrum


def _level(n: int, m: int, max_shift_px: float) -> _Level:
    k = radial_frequency((m, m, m), rfft=True) * m
    band = ((k > 0) & (k <= m / 2 - 0.5)).to(torch.float32)
    shell = k.round().long().clamp(max=n // 2)
    # A cropped box samples translations every n / m voxels, too coarse to catch a correlation
    # peak; the spectrum is zero-padded by 1.5 so that the band-limited correlation is sampled
    # at least 1.5 times as finely as its shortest period.
    c = min(n, 2 * math.ceil(0.75 * m))
    s = _signed_index(c) * (n / c)
    zz, yy, xx = torch.meshgrid(s, s, s, indexing="ij")
    vec = torch.stack([zz, yy, xx], -1).reshape(-1, 3)
    allowed = torch.nonzero(vec.norm(dim=1) <= max_shift_px + 1e-6).flatten()
    f = _signed_index(m)
    kz, ky, kx = torch.meshgrid(f, f, torch.arange(m // 2 + 1, dtype=torch.float32),
                                indexing="ij")
    kvec = torch.stack([kz, ky, kx], -1).reshape(-1, 3)
    flat = torch.nonzero(band.flatten() > 0).flatten()
    sign = 1.0 - 2.0 * (kvec[flat].sum(-1).long() % 2).float()
    return _Level(m, c, allowed, vec[allowed], flat, kvec[flat], kvec[flat].flip(-1), sign,
                  shell.flatten()[flat], _rfft_weights(n, m).flatten()[flat])


def _pad_rfft(spec: Tensor, c: int) -> Tensor:
    """Embed `(..., m, m, m // 2 + 1)` rfft spectra into `(..., c, c, c // 2 + 1)` (c ≥ m)."""
    m = spec.shape[-3]
    if c == m:
        return spec
    idx, kx = _low_frequency_index(m, c), torch.arange(m // 2 + 1)
    out = spec.new_zeros(*spec.shape[:-3], c, c, c // 2 + 1)
    out[..., idx[:, None, None], idx[None, :, None], kx[None, None, :]] = spec
    return out


def shell_log_power(spec: Tensor, mask: Tensor, n: int) -> Tensor:
    """Log mean power per integer shell `(B, n // 2 + 1)` of `(B, n, n, h)` spectra in a mask."""
    k = (radial_frequency((n, n, n), rfft=True) * n).round().long().clamp(max=n // 2).flatten()
    pw = (spec.real**2 + spec.imag**2).flatten(1) * mask.flatten(1)
    cnt = torch.zeros(mask.shape[0], n // 2 + 1).index_add_(1, k, mask.flatten(1).float())
    tot = torch.zeros(spec.shape[0], n // 2 + 1).index_add_(1, k, pw)
    return torch.log(tot / cnt.clamp_min(1.0) + 1e-12)


def local_grid(step_deg: float, range_deg: float) -> Tensor:
    """Rotations of an SO(3) grid within ``range_deg`` (+ half a step) of the identity,
    identity first.
    """
    g = so3_grid(step_deg)
    keep = geodesic_distance_deg(g, torch.eye(3).expand_as(g)) <= range_deg + step_deg / 2
    return torch.cat([torch.eye(3)[None], g[keep]])


def offset_grid(step_deg: float) -> Tensor:
    """`(27, 3, 3)` small rotations: rotation vectors on a 3 × 3 × 3 lattice of ``step_deg``."""
    v = torch.tensor([-1.0, 0.0, 1.0]) * math.radians(step_deg)
    vec = torch.stack(torch.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
    ang = vec.norm(dim=1)
    axis = vec / ang.clamp_min(1e-12)[:, None]
    axis[ang == 0] = torch.tensor([1.0, 0.0, 0.0])
    return axis_angle_to_matrix(axis, ang)


def shift_lattice(points: int, spacing_px: float) -> Tensor:
    """`(points³, 3)` translations on a cubic lattice centred on 0."""
    v = (torch.arange(points, dtype=torch.float32) - (points - 1) / 2) * spacing_px
    return torch.stack(torch.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)


#: First step (degrees) of the local Fourier refinement when aligning to an average (averaging):
#: 6° was better than 3° on 200 ribosomes against the clean map
#: (benchmarks/experiments/posterior_fft_refine.jsonl).
AVERAGING_REFINE_START_DEG = 6.0
#: Translations the fine level marginalises over, around the current estimate (voxels).
FINE_SHIFTS = shift_lattice(3, 1.0)
#: Translations of the final translation posterior, around the current estimate (voxels).
FINAL_SHIFTS = shift_lattice(5, 0.5)


def chordal_mean(prob: Tensor, rots: Tensor) -> tuple[Tensor, Tensor]:
    """Chordal mean `(B, 3, 3)` of `(B|1, G, 3, 3)` rotations under `(B, G)` weights, and its
    resultant length `(B,)` in [0, 1] (1: all mass on one rotation).
    """
    m = torch.einsum("bg,bgij->bij", prob, rots.expand(prob.shape[0], -1, 3, 3))
    sv = torch.linalg.svdvals(m)
    return svd_orthogonalize(m), sv.sum(-1) / 3.0


@dataclass
class PairTerms:
    """Per-pair quantities shared by every level: spectra, masks, head outputs."""

    p_ft: Tensor          # (B, n, n, h) particle spectrum
    r: Tensor             # (Br, n, n, n) reference(s), real space
    p_mask: Tensor        # (1|B, n, n, h) particle Fourier mask
    r_mask_full: Tensor | None  # (n, n, n) reference mask in its own frame, full spectrum
    weights: Tensor       # (B, 2, S) shell weights: rotation search, translation
    log_kappa: Tensor     # (B, 3) coarse, fine, translation
    cache: dict | None = None  # padded reference spectra per level size (filled lazily)

    @property
    def n(self) -> int:
        """Box size."""
        return self.p_ft.shape[-2]

    def padded_spectrum_at(self, m: int) -> Tensor:
        """`(Br, 2, 2m, 2m, 2m)` real and imaginary parts of the centred spectrum of the
        ``m``-cropped reference, zero-padded twice (sampled every half frequency step, so that
        trilinear interpolation in Fourier space stays accurate), zero frequency at index m.
        """
        if self.cache is None:
            self.cache = {}
        if m not in self.cache:
            r = torch.fft.irfftn(_crop_rfft(torch.fft.rfftn(self.r, dim=_DIMS), m),
                                 s=(m, m, m), dim=_DIMS)
            big = 2 * m
            rolled = torch.roll(r, shifts=(-(m // 2),) * 3, dims=_DIMS)
            # Gridding correction: trilinear interpolation of the spectrum multiplies the
            # object by sinc²(x / 2m) per axis (not isotropic); divide it out beforehand.
            x = torch.where(torch.arange(m) < (m + 1) // 2, torch.arange(m),
                            torch.arange(m) - m).to(r.dtype)
            apod = torch.sinc(x / big) ** 2
            rolled = rolled / (apod[:, None, None] * apod[None, :, None] * apod[None, None, :])
            # (−1)^(x+y+z) in real space centres the spectrum (an fftshift without the copy)
            sg = 1.0 - 2.0 * (x.long() % 2).to(r.dtype)
            rolled = rolled * (sg[:, None, None] * sg[None, :, None] * sg[None, None, :])
            pos = torch.where(x >= 0, x, x + big).long()
            pad = r.new_zeros(r.shape[0], big, big, big)
            pad[:, pos[:, None, None], pos[None, :, None], pos[None, None, :]] = rolled
            spec = torch.fft.fftn(pad, dim=_DIMS)
            self.cache[m] = torch.stack([spec.real, spec.imag], 1)
        return self.cache[m]

    def centred_mask(self) -> Tensor | None:
        """`(1, 1, n, n, n)` reference mask with zero frequency at n // 2 (cached)."""
        if self.r_mask_full is None:
            return None
        if self.cache is None:
            self.cache = {}
        if "mask" not in self.cache:
            self.cache["mask"] = torch.fft.fftshift(self.r_mask_full, dim=_DIMS)[None, None]
        return self.cache["mask"]

    def take(self, rows: Tensor) -> PairTerms:
        """The terms of pairs ``rows`` (repeats allowed: one row per candidate)."""
        def sel(x: Tensor) -> Tensor:
            return x if x.shape[0] == 1 else x[rows]

        cache = None if self.cache is None else {
            k: (v if k == "mask" else sel(v)) for k, v in self.cache.items()}
        return PairTerms(self.p_ft[rows], sel(self.r), sel(self.p_mask), self.r_mask_full,
                         self.weights[rows], self.log_kappa[rows], cache)


class PosteriorAligner:
    """Learned posterior aligner (module docstring).

    Parameters
    ----------
    head : SpectralCorrelationHead
        The trained correlation head.
    range_deg : float
        ``<= 90``: local search within this angle of the identity (learned prior over the
        angle); larger: all of SO(3), uniform prior.
    max_shift_px : float, optional
        Largest translation (voxels, Euclidean); default ``n / 4``.
    coarse_step_deg : float, optional
        Coarse grid step; default 12° (local: 22 rotations within 15°) or 20° (global: 1,872).
    coarse_size, fine_size : int, optional
        Fourier-cropped box sizes of the coarse and fine levels (default ``3n / 8`` and
        ``n / 2``; at least 8).
    candidate_mass, max_candidates
        Global range: coarse cells kept for the fine stage (see module docstring).
    refine_start_deg : float, optional
        First step of the final local Fourier refinement (module docstring, step 4); ``None``
        (default): no refinement, the posterior's pose is the result.
    chunk : int
        Number of (pair, rotation) correlations held at once.
    """

    def __init__(self, head: SpectralCorrelationHead, range_deg: float = 15.0,
                 max_shift_px: float | None = None, coarse_step_deg: float | None = None,
                 coarse_size: int | None = None, fine_size: int | None = None,
                 candidate_mass: float = 0.9, max_candidates: int = 4,
                 refine_start_deg: float | None = None, chunk: int = 4096) -> None:
        self.head = head.eval()
        self.local = range_deg <= 90.0
        self.range_deg = float(range_deg)
        self.max_shift_px = max_shift_px
        self.coarse_step_deg = coarse_step_deg or (12.0 if self.local else 20.0)
        n = head.box_px
        self.coarse_size = coarse_size or max(8, 3 * n // 8)
        self.fine_size = fine_size or max(8, n // 2)
        self.candidate_mass = float(candidate_mass)
        self.max_candidates = int(max_candidates)
        self.chunk = int(chunk)
        self.grid = (local_grid(self.coarse_step_deg, self.range_deg) if self.local
                     else so3_grid(self.coarse_step_deg))
        self.fine_steps_deg = (0.6 * self.coarse_step_deg, 0.3 * self.coarse_step_deg)
        self._levels: dict[int, _Level] = {}
        if refine_start_deg is not None and refine_start_deg <= 0:
            raise InputError(f"refine_start_deg {refine_start_deg}", field="refine_start_deg",
                             expected="a positive angle in degrees, or None")
        self.refiner = None if refine_start_deg is None else FFTAligner(
            refine_steps=4, refine_start_deg=float(refine_start_deg), max_shift_px=max_shift_px)

    # ------------------------------------------------------------------ building blocks
    def level(self, m: int) -> _Level:
        """Fourier and translation bookkeeping of the `m³` crop (cached)."""
        if m not in self._levels:
            n = self.head.box_px
            self._levels[m] = _level(n, m, self.max_shift_px if self.max_shift_px is not None
                                     else n / 4)
        return self._levels[m]

    def pair_terms(self, particles: Tensor, reference: Tensor, particle_mask: Tensor | None,
                   reference_mask: Tensor | None) -> PairTerms:
        """Spectra, masks and the head's outputs for `(B, n³)` particles and `(1|B, n³)` refs."""
        n = particles.shape[-1]
        h = n // 2 + 1
        p_ft = torch.fft.rfftn(particles, dim=_DIMS)
        r_ft = torch.fft.rfftn(reference, dim=_DIMS)
        pm = (torch.ones(1, n, n, h) if particle_mask is None
              else torch.as_tensor(particle_mask, dtype=torch.float32)[..., :h])
        pm = pm[None] if pm.ndim == 3 else pm
        rm = None if reference_mask is None else torch.as_tensor(reference_mask,
                                                                  dtype=torch.float32)
        rm_half = torch.ones(1, n, n, h) if rm is None else rm[None, ..., :h]
        lp = shell_log_power(p_ft, pm.expand(p_ft.shape[0], -1, -1, -1), n)
        lr = shell_log_power(r_ft, rm_half.expand(r_ft.shape[0], -1, -1, -1), n).expand_as(lp)
        # Shells a volume does not fill (Fourier-padded or low-passed data: power a million times
        # below its strongest shell) carry no information: the head sees them at that floor and
        # their weights are zero.
        floor = math.log(1e-6)
        fp, fr = lp.amax(-1, keepdim=True) + floor, lr.amax(-1, keepdim=True) + floor
        filled = (lp > fp) & (lr > fr)
        w, log_kappa = self.head(torch.maximum(lp, fp), torch.maximum(lr, fr))
        return PairTerms(p_ft, reference, pm, rm, w * filled[:, None], log_kappa)

    def _band_values(self, t: PairTerms, rots: Tensor, lvl: _Level,
                     mask_rots: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Reference spectrum and Fourier mask rotated by `(1|B, G, 3, 3)` at the band's
        coefficients, `(B|1, G, Kb)` each (mask ``None`` if the reference has none).

        The twice-padded centred spectrum is sampled at ``Rᵀ k``: ``R̂_R(k) = C(Rᵀ k) (−1)^{Σk}``
        (rotation about the box centre); the mask is sampled the same way, at ``mask_rots``
        `(B, 1, 3, 3)` instead when given (one per pair for a fine grid, whose offsets of a few
        degrees barely move a wedge's edges).
        """
        m, n = lvl.size, t.n
        spec = t.padded_spectrum_at(m)
        per_pair_ref = spec.shape[0] > 1
        b = t.p_ft.shape[0]
        if per_pair_ref:
            rots = rots.expand(b, -1, 3, 3)
        rb, g = rots.shape[:2]
        # Rᵀ k in grid_sample's xyz order: the zyx matrices with both axes reversed
        src = torch.einsum("bgji,kj->bgki", rots.flip(-1, -2), lvl.band_k_xyz)  # (Rb, G, Kb, 3)
        grid = ((2.0 * src + m) * (2.0 / (2 * m - 1)) - 1.0)[..., None, :]
        if not per_pair_ref:
            grid = grid.reshape(1, rb * g, -1, 1, 3)
        val = F.grid_sample(spec, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)[..., 0].reshape(-1, 2, g, lvl.band_k.shape[0])
        if not per_pair_ref:
            val = val.reshape(2, rb, g, -1).transpose(0, 1)
        cplx = torch.complex(val[:, 0], val[:, 1]) * lvl.band_sign
        mv = None
        mk = t.centred_mask()
        if mk is not None:
            if mask_rots is not None:
                src = torch.einsum("bgji,kj->bgki", mask_rots.flip(-1, -2), lvl.band_k_xyz)
            um = (src + n // 2) * (2.0 / (n - 1)) - 1.0
            mv = F.grid_sample(mk, um.reshape(1, -1, src.shape[2], 1, 3),
                               mode="bilinear", padding_mode="zeros",
                               align_corners=True)[0, 0, ..., 0].reshape(src.shape[0],
                                                                         src.shape[1], -1)
        return cplx, mv

    def _particle_band(self, t: PairTerms, lvl: _Level, weight_set: int
                       ) -> tuple[Tensor, Tensor]:
        """Particle spectrum `(B, Kb)` at the band and its weight `(B, Kb)` (mask × w × mult)."""
        p = _crop_rfft(t.p_ft, lvl.size).flatten(-3)[:, lvl.band_flat]
        pm = _crop_rfft(t.p_mask, lvl.size).flatten(-3)[:, lvl.band_flat]
        w = t.weights[:, weight_set][:, lvl.band_shell]
        return p, pm * w * lvl.band_mult

    def coarse_logits(self, t: PairTerms, rots: Tensor, lvl: _Level) -> tuple[Tensor, Tensor]:
        """Log posterior `(B, G)` of `(1, G, 3, 3)` rotations (translations marginalised over the
        whole range by one inverse FFT per candidate) and each candidate's posterior-mean
        translation `(B, G, 3)`.
        """
        m, c = lvl.size, lvl.corr_size
        h = m // 2 + 1
        b = t.p_ft.shape[0]
        kappa = t.log_kappa[:, 0].exp()
        p, base = self._particle_band(t, lvl, 0)
        logits, means = [], []
        per = max(1, self.chunk // max(1, rots.shape[1]))
        shared = t.r.shape[0] == 1 and rots.shape[0] == 1
        if shared:  # one reference for all (averaging): rotate it once
            rf_all, mv_all = self._band_values(t, rots, lvl)
        for s0 in range(0, b, per):
            sl = torch.arange(s0, min(s0 + per, b))
            rf, mv = (rf_all, mv_all) if shared else self._band_values(t.take(sl), rots, lvl)
            msk = base[sl, None] if mv is None else base[sl, None] * mv
            prod = torch.conj(rf) * p[sl, None] * msk / lvl.band_mult          # one half only
            full = prod.new_zeros(*prod.shape[:2], m * m * h)
            full[..., lvl.band_flat] = prod
            cc = torch.fft.irfftn(_pad_rfft(full.reshape(*prod.shape[:2], m, m, h), c),
                                  s=(c, c, c), dim=_DIMS).flatten(-3)[..., lvl.allowed]
            pp = (msk * (p[sl, None].real**2 + p[sl, None].imag**2)).sum(-1)
            rr = (msk * (rf.real**2 + rf.imag**2)).sum(-1)
            cc = cc * (c**3) / torch.sqrt((pp * rr).clamp_min(1e-30))[..., None]
            z = kappa[sl, None, None] * cc
            logits.append(torch.logsumexp(z, -1) - math.log(cc.shape[-1]))
            means.append(torch.einsum("bga,ac->bgc", torch.softmax(z, -1), lvl.shifts))
        return self._with_prior(torch.cat(logits), rots), torch.cat(means)

    def local_cc(self, t: PairTerms, rots: Tensor, lvl: _Level, centre: Tensor,
                 offsets: Tensor, weight_set: int, mask_rots: Tensor | None = None) -> Tensor:
        """Correlation `(B, G, T)` of `(B, G, 3, 3)` rotations at translations ``centre`` `(B, 3)`
        + ``offsets`` `(T, 3)`: sums over the band's coefficients, no inverse FFT. ``mask_rots``
        `(B, 1, 3, 3)`: see :meth:`_band_values`.
        """
        b = t.p_ft.shape[0]
        p, base = self._particle_band(t, lvl, weight_set)
        # e^{2πi k·(c + o)/n} = e^{2πi k·c/n} e^{2πi k·o/n}: per pair `(B, Kb)` × shared `(Kb, T)`
        arg_c = (centre @ lvl.band_k.T) * (2 * math.pi / t.n)
        phase_c = torch.polar(torch.ones_like(arg_c), arg_c)
        arg_o = (lvl.band_k @ offsets.T) * (2 * math.pi / t.n)
        phase_o = torch.polar(torch.ones_like(arg_o), arg_o)
        out = []
        per = max(1, self.chunk // max(1, rots.shape[1]))
        for s0 in range(0, b, per):
            sl = torch.arange(s0, min(s0 + per, b))
            rf, mv = self._band_values(t.take(sl), rots[sl], lvl,
                                       None if mask_rots is None else mask_rots[sl])
            msk = base[sl, None] if mv is None else base[sl, None] * mv
            num = ((torch.conj(rf) * (p[sl] * phase_c[sl])[:, None] * msk) @ phase_o).real
            pp = (msk * (p[sl, None].real**2 + p[sl, None].imag**2)).sum(-1)
            rr = (msk * (rf.real**2 + rf.imag**2)).sum(-1)
            out.append(num / torch.sqrt((pp * rr).clamp_min(1e-30))[..., None])
        return torch.cat(out)

    def fine_logits(self, t: PairTerms, rots: Tensor, lvl: _Level, centre: Tensor,
                    mask_rots: Tensor | None = None) -> Tensor:
        """Log posterior `(B, G)` of `(B, G, 3, 3)` rotations, the translation marginalised over
        ``centre + FINE_SHIFTS`` (``mask_rots``: see :meth:`_band_values`).
        """
        cc = self.local_cc(t, rots, lvl, centre, FINE_SHIFTS, 0, mask_rots)
        z = t.log_kappa[:, 1].exp()[:, None, None] * cc
        return self._with_prior(torch.logsumexp(z, -1) - math.log(cc.shape[-1]), rots)

    def translation_logits(self, t: PairTerms, rot: Tensor, lvl: _Level, centre: Tensor
                           ) -> Tensor:
        """Log posterior `(B, T)` of translations ``centre + FINAL_SHIFTS`` at rotations `(B, 3, 3)`."""
        cc = self.local_cc(t, rot[:, None], lvl, centre, FINAL_SHIFTS, 1)[:, 0]
        return t.log_kappa[:, 2].exp()[:, None] * cc

    def _with_prior(self, logit: Tensor, rots: Tensor) -> Tensor:
        if not self.local:
            return logit
        return logit + self.head.log_prior(
            geodesic_distance_deg(rots, torch.eye(3).expand_as(rots)))

    # ------------------------------------------------------------------ search
    @torch.no_grad()
    def align_to_reference(self, particles, reference, particle_mask=None,
                           reference_mask=None) -> AlignResult:
        """Find ``(R, t)`` with ``particle ≈ shift(rotate(reference, R), t)``.

        Parameters
        ----------
        particles : array or Tensor
            `(B, n, n, n)` subtomograms (zyx), ``n`` the head's box.
        reference : array or Tensor
            `(n, n, n)` shared, or `(B, n, n, n)` one per particle.
        particle_mask, reference_mask : Tensor, optional
            Full-spectrum Fourier masks as in :meth:`FFTAligner.align_to_reference`.
        """
        t0 = time.perf_counter()
        p = torch.as_tensor(np.asarray(particles) if not isinstance(particles, Tensor)
                            else particles).to(torch.float32)
        r = torch.as_tensor(np.asarray(reference) if not isinstance(reference, Tensor)
                            else reference).to(torch.float32)
        p = p[None] if p.ndim == 3 else p
        r = r[None] if r.ndim == 3 else r
        n = self.head.box_px
        if p.ndim != 4 or tuple(p.shape[1:]) != (n, n, n) or tuple(r.shape[1:]) != (n, n, n) \
                or r.shape[0] not in (1, p.shape[0]):
            raise InputError(f"particles {tuple(p.shape)} and reference {tuple(r.shape)}",
                             field="particles", expected=f"(B, {n}, {n}, {n}) cubes and one "
                             f"({n}, {n}, {n}) reference or one per particle")
        rots, shifts, conf = [], [], []
        per = max(1, self.chunk // 16)
        for s0 in range(0, p.shape[0], per):
            pp = p[s0:s0 + per]
            rr = r if r.shape[0] == 1 else r[s0:s0 + per]
            terms = self.pair_terms(pp, rr, particle_mask, reference_mask)
            # the refinement finds its own translation: skip the posterior's final lattice
            rot, sh, cf = self.search(terms, final_translation=self.refiner is None)
            if self.refiner is not None:
                ref = self.refiner.align_to_reference(pp, rr[0] if rr.shape[0] == 1 else rr,
                                                      particle_mask, reference_mask,
                                                      init_rotations=rot)
                rot, sh = ref.rotations, ref.shifts_zyx_px
            rots.append(rot)
            shifts.append(sh)
            conf.append(cf)
        return AlignResult(torch.cat(rots), torch.cat(shifts), torch.cat(conf),
                           time.perf_counter() - t0)

    def search(self, t: PairTerms, final_translation: bool = True
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Coarse-to-fine posterior: rotation (chordal mean) `(B, 3, 3)`, translation
        (posterior mean) `(B, 3)` and confidence (resultant length of the coarse rotation
        posterior) `(B,)`. Without ``final_translation`` the translation is the fine stage's
        estimate (the half-voxel lattice of step 3 is skipped).
        """
        b = t.p_ft.shape[0]
        ar = torch.arange(b)
        coarse, fine = self.level(self.coarse_size), self.level(self.fine_size)
        logit, t_given_r = self.coarse_logits(t, self.grid[None], coarse)     # (B, G), (B, G, 3)
        prob = torch.softmax(logit, -1)
        centre, conf = chordal_mean(prob, self.grid[None])
        if self.local:
            centres = centre[:, None]                                          # (B, 1, 3, 3)
            shift0 = torch.einsum("bg,bgc->bc", prob, t_given_r)[:, None]      # (B, 1, 3)
        else:
            order = prob.argsort(-1, descending=True)[:, : self.max_candidates]
            mass = prob.gather(1, order).cumsum(-1)
            k = int(((mass < self.candidate_mass).sum(-1) + 1).clamp(
                max=self.max_candidates).max())
            centres = self.grid[order[:, :k]]                                  # (B, k, 3, 3)
            shift0 = t_given_r.gather(1, order[:, :k, None].expand(-1, -1, 3))  # (B, k, 3)
        k = centres.shape[1]
        rows = ar.repeat_interleave(k)
        tk = t.take(rows) if k > 1 else t
        for step in self.fine_steps_deg:
            cand = (centres[:, :, None] @ offset_grid(step)[None, None]).reshape(b * k, 27, 3, 3)
            fl = self.fine_logits(tk, cand, fine, shift0.reshape(-1, 3),
                                  centres.reshape(-1, 1, 3, 3)).reshape(b, k, 27)
            best = torch.logsumexp(fl, -1).argmax(-1)                          # (B,)
            mean, _ = chordal_mean(torch.softmax(fl[ar, best], -1),
                                   cand.reshape(b, k, 27, 3, 3)[ar, best])
            centres, shift0 = mean[:, None], shift0[ar, best][:, None]
            if k > 1:
                k, tk = 1, t
        rot = centres[:, 0]
        if not final_translation:
            return rot, shift0[:, 0], conf
        q = torch.softmax(self.translation_logits(t, rot, fine, shift0[:, 0]), -1)
        shift = shift0[:, 0] + q @ FINAL_SHIFTS
        return rot, shift, conf
