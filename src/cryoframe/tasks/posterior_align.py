"""Posterior alignment: a learned correlation head over a coarse-to-fine SO(3) grid.

For a pair (particle ``p``, reference ``r``), every candidate rotation ``R`` scores all
translations at once with a wedge-constrained, shell-weighted normalised cross-correlation
(one inverse FFT, as in :mod:`cryoframe.tasks.fft_align`)::

    cc_R(t) = Σ_k M(k) w(|k|) conj(R̂_R(k)) P̂(k) e^{2πi k·t} / sqrt(Σ M w |P̂|² · Σ M w |R̂_R|²)

where ``M`` is the Fourier region both volumes sample and ``w`` the per-shell weights of the
learned head (:class:`cryoframe.models.correlation_head.SpectralCorrelationHead`), read from the
pair's own power spectra. The head's concentrations ``κ`` turn scores into a posterior::

    p(R | p, r) ∝ prior(R) · mean_t exp(κ · cc_R(t)),     p(t | R) ∝ exp(κ_t · cc_R(t))

Search (rotation output: a distribution over a grid on SO(3), summarised by its chordal mean):

1. coarse: the whole range (``local``: a ``coarse_step_deg`` grid within ``local_range_deg`` of
   the identity; ``global``: all of SO(3)) on volumes Fourier-cropped to ``coarse_size``;
2. fine: two 3 × 3 × 3 grids of small rotations (steps ``0.6 × coarse step`` then half of it) at
   ``fine_size``, each centred on the previous posterior mean. In the global range the fine
   stage runs around the ``k`` most probable coarse cells, ``k`` being the number of cells that
   hold ``candidate_mass`` of the coarse posterior (at most ``max_candidates``): a confident
   coarse posterior buys one candidate, an uncertain one several;
3. translation at full size: the posterior mean of ``t`` given the final rotation (each voxel
   moved to its parabolic sub-voxel peak), so a flat posterior falls back to the prior's centre
   instead of a noise peak.

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
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.wedge import rotate_fourier_mask
from cryoframe.geometry.grids import radial_frequency
from cryoframe.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_distance_deg,
    so3_grid,
    svd_orthogonalize,
)
from cryoframe.geometry.transforms import rotate_volumes
from cryoframe.models.correlation_head import SpectralCorrelationHead
from cryoframe.tasks.fft_align import AlignResult, _crop_rfft, _rfft_weights

__all__ = ["PosteriorAligner", "PairTerms", "shell_log_power", "local_grid", "offset_grid",
           "chordal_mean"]

_DIMS = (-3, -2, -1)


@dataclass
class _Level:
    size: int
    corr_size: int   # the correlation is sampled on a corr_size³ grid (zero-padded spectrum)
    band: Tensor     # (m, m, m//2+1) float, DC and corners excluded
    shell: Tensor    # (m, m, m//2+1) long, integer shell of the full box
    mult: Tensor     # (m, m, m//2+1) multiplicity of each rfft coefficient
    allowed: Tensor  # (A,) flat indices of translations within the shift range
    shifts: Tensor   # (A, 3) those translations in full-size voxels (zyx)
    band_flat: Tensor  # (Kb,) flat rfft indices of the band's coefficients
    band_k: Tensor     # (Kb, 3) their integer frequencies (zyx)
    band_sign: Tensor  # (Kb,) (−1)^(kz+ky+kx): phase of a rotation about the box centre


def _signed(m: int) -> Tensor:
    i = torch.arange(m)
    return torch.where(i > m // 2, i - m, i).to(torch.float32)


def _level(n: int, m: int, max_shift_px: float) -> _Level:
    k = radial_frequency((m, m, m), rfft=True) * m
    band = ((k > 0) & (k <= m / 2 - 0.5)).to(torch.float32)
    shell = k.round().long().clamp(max=n // 2)
    # A cropped box samples translations every n / m voxels, too coarse to catch a correlation
    # peak; the spectrum is zero-padded by 1.5 so that the band-limited correlation is sampled
    # at least 1.5 times as finely as its shortest period.
    c = min(n, 2 * math.ceil(0.75 * m))
    s = _signed(c) * (n / c)
    zz, yy, xx = torch.meshgrid(s, s, s, indexing="ij")
    vec = torch.stack([zz, yy, xx], -1).reshape(-1, 3)
    allowed = torch.nonzero(vec.norm(dim=1) <= max_shift_px + 1e-6).flatten()
    f = _signed(m)
    kz, ky, kx = torch.meshgrid(f, f, torch.arange(m // 2 + 1, dtype=torch.float32),
                                indexing="ij")
    kvec = torch.stack([kz, ky, kx], -1).reshape(-1, 3)
    flat = torch.nonzero(band.flatten() > 0).flatten()
    sign = 1.0 - 2.0 * (kvec[flat].sum(-1).long() % 2).float()
    return _Level(m, c, band, shell, _rfft_weights(n, m), allowed, vec[allowed], flat,
                  kvec[flat], sign)


def _pad_rfft(spec: Tensor, c: int) -> Tensor:
    """Embed `(..., m, m, m // 2 + 1)` rfft spectra into `(..., c, c, c // 2 + 1)` (c ≥ m)."""
    m = spec.shape[-3]
    if c == m:
        return spec
    h = m // 2
    idx = torch.cat([torch.arange((m + 1) // 2), torch.arange(c - h, c)])
    out = spec.new_zeros(*spec.shape[:-3], c, c, c // 2 + 1)
    out[..., idx[:, None, None], idx[None, :, None], torch.arange(h + 1)[None, None, :]] = spec
    return out


def shell_log_power(spec: Tensor, mask: Tensor, n: int) -> Tensor:
    """Log mean power per integer shell `(B, n // 2 + 1)` of `(B, n, n, h)` spectra in a mask."""
    k = (radial_frequency((n, n, n), rfft=True) * n).round().long().clamp(max=n // 2).flatten()
    pw = (spec.real**2 + spec.imag**2).flatten(1) * mask.flatten(1)
    cnt = torch.zeros(mask.shape[0], n // 2 + 1).index_add_(1, k, mask.flatten(1).float())
    tot = torch.zeros(spec.shape[0], n // 2 + 1).index_add_(1, k, pw)
    return torch.log(tot / cnt.clamp_min(1.0) + 1e-12)


def local_grid(step_deg: float, range_deg: float) -> Tensor:
    """Rotations of an SO(3) grid within ``range_deg`` (+ half a step) of the identity, identity first."""
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
    log_kappa: Tensor     # (B, 3)
    small: dict | None = None  # Fourier-cropped references per level size (filled lazily)

    def padded_spectrum_at(self, m: int) -> Tensor:
        """`(Br, 2, 2m, 2m, 2m)` real and imaginary parts of the centred spectrum of the
        ``m``-cropped reference, zero-padded twice (sampled every half frequency step, so that
        trilinear interpolation in Fourier space stays accurate), zero frequency at index m.
        """
        key = ("padded", m)
        if self.small is None:
            self.small = {}
        if key not in self.small:
            r = self.reference_at(m)
            big = 2 * m
            pos = torch.where(torch.arange(m) < (m + 1) // 2, torch.arange(m),
                              torch.arange(m) + big - m)
            rolled = torch.roll(r, shifts=(-(m // 2),) * 3, dims=_DIMS)
            # Gridding correction: trilinear interpolation of the spectrum multiplies the
            # object by sinc²(x / 2m) per axis (not isotropic); divide it out beforehand.
            x = torch.where(torch.arange(m) < (m + 1) // 2, torch.arange(m),
                            torch.arange(m) - m).to(r.dtype)
            apod = torch.sinc(x / big) ** 2
            rolled = rolled / (apod[:, None, None] * apod[None, :, None] * apod[None, None, :])
            pad = r.new_zeros(r.shape[0], big, big, big)
            pad[:, pos[:, None, None], pos[None, :, None], pos[None, None, :]] = rolled
            spec = torch.fft.fftshift(torch.fft.fftn(pad, dim=_DIMS), dim=_DIMS)
            self.small[key] = torch.stack([spec.real, spec.imag], 1)
        return self.small[key]

    def reference_at(self, m: int) -> Tensor:
        """`(Br, m, m, m)` reference(s) Fourier-cropped to ``m`` voxels (cached)."""
        if self.small is None:
            self.small = {}
        if m not in self.small:
            self.small[m] = torch.fft.irfftn(_crop_rfft(torch.fft.rfftn(self.r, dim=_DIMS), m),
                                             s=(m, m, m), dim=_DIMS)
        return self.small[m]


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
        Coarse grid step; default 7.5° (local) or 20° (global).
    coarse_size, fine_size : int, optional
        Fourier-cropped box sizes of the coarse and fine levels (default ``3n / 8`` and
        ``n / 2``; at least 8).
    candidate_mass, max_candidates
        Global range: coarse cells kept for the fine stage (see module docstring).
    chunk : int
        Number of rotated volumes held at once.
    """

    def __init__(self, head: SpectralCorrelationHead, range_deg: float = 15.0,
                 max_shift_px: float | None = None, coarse_step_deg: float | None = None,
                 coarse_size: int | None = None, fine_size: int | None = None,
                 candidate_mass: float = 0.9, max_candidates: int = 4, chunk: int = 8192) -> None:
        self.head = head.eval()
        self.local = range_deg <= 90.0
        self.range_deg = float(range_deg)
        self.max_shift_px = max_shift_px
        self.coarse_step_deg = coarse_step_deg or (7.5 if self.local else 20.0)
        n = head.box_px
        self.coarse_size = coarse_size or max(8, 3 * n // 8)
        self.fine_size = fine_size or max(8, n // 2)
        self.candidate_mass = float(candidate_mass)
        self.max_candidates = int(max_candidates)
        self.chunk = int(chunk)
        self.grid = (local_grid(self.coarse_step_deg, self.range_deg) if self.local
                     else so3_grid(self.coarse_step_deg))
        self.grid_angle_deg = geodesic_distance_deg(self.grid, torch.eye(3).expand_as(self.grid))
        self.fine_steps_deg = (0.6 * self.coarse_step_deg, 0.3 * self.coarse_step_deg)
        self._levels: dict[int, _Level] = {}

    # ------------------------------------------------------------------ building blocks
    def level(self, n: int, m: int) -> _Level:
        """Fourier and translation bookkeeping of the `m³` crop of an `n³` box (cached)."""
        if m not in self._levels:
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
        lr = shell_log_power(r_ft, rm_half.expand(r_ft.shape[0], -1, -1, -1), n)
        w, log_kappa = self.head(lp, lr.expand(lp.shape[0], -1))
        return PairTerms(p_ft, reference, pm, rm, w, log_kappa)

    def cc_maps(self, t: PairTerms, rots: Tensor, lvl: _Level, rows: Tensor | None = None,
                all_shifts: bool = False, weight_set: int = 0) -> Tensor:
        """Correlation `(B, G, A)` over the allowed translations for `(1|B, G, 3, 3)` rotations
        (`(B, G, m³)`, every translation, with ``all_shifts``); weight set 0 (rotation) or 1
        (translation) of the head's shell weights.
        """
        m = lvl.size
        rows = torch.arange(t.p_ft.shape[0]) if rows is None else rows
        p = _crop_rfft(t.p_ft[rows], m)[:, None]                              # (b, 1, K)
        pm = _crop_rfft(t.p_mask if t.p_mask.shape[0] == 1 else t.p_mask[rows], m)[:, None]
        w = t.weights[rows, weight_set][:, lvl.shell]                        # (b, K)
        base = pm * (w * lvl.band)[:, None]                                  # (b, 1, K)
        rf, rmr = self._rotated_reference(t, rots, lvl, rows)
        mask = base if rmr is None else base * rmr
        c = lvl.corr_size
        num = torch.fft.irfftn(_pad_rfft(torch.conj(rf) * p * mask, c), s=(c, c, c),
                               dim=_DIMS).flatten(-3)
        wm = mask * lvl.mult
        pp = (wm * (p.real**2 + p.imag**2)).sum(_DIMS)
        rr_ = (wm * (rf.real**2 + rf.imag**2)).sum(_DIMS)
        norm = torch.sqrt((pp * rr_).clamp_min(1e-30)) / c**3
        if all_shifts:
            return num / norm[..., None]
        return num.index_select(-1, lvl.allowed) / norm[..., None]

    def _rotated_reference(self, t: PairTerms, rots: Tensor, lvl: _Level, rows: Tensor
                           ) -> tuple[Tensor, Tensor | None]:
        """Spectra `(b|1, G, m, m, m//2+1)` of the reference rotated by `(1|b, G, 3, 3)` and its
        rotated Fourier mask (or ``None``).

        Cropped levels sample the twice-padded centred spectrum at ``Rᵀ k`` for the band's
        coefficients only (``R̂_R(k) = C(Rᵀ k) (−1)^{Σk}``); the full-size level rotates in real
        space (one rotation per particle: the final translation).
        """
        m = lvl.size
        n = t.p_ft.shape[-2]
        b, g = len(rows), rots.shape[1]
        h = m // 2 + 1
        if m == n:
            r = t.r if t.r.shape[0] == 1 else t.r[rows]
            if r.shape[0] == 1 and rots.shape[0] == 1:
                vols = rotate_volumes(r[0], rots[0])[None]
            else:
                src = r[:, None].expand(b, g, -1, -1, -1).reshape(-1, m, m, m)
                vols = rotate_volumes(src, rots.expand(b, -1, 3, 3).reshape(-1, 3, 3))
                vols = vols.reshape(b, g, m, m, m)
            rmr = None
            if t.r_mask_full is not None:
                rmr = rotate_fourier_mask(t.r_mask_full, rots.reshape(-1, 3, 3)).reshape(
                    rots.shape[0], g, m, m, h)
            return torch.fft.rfftn(vols, dim=_DIMS), rmr
        cplx, mv = self._band_values(t, rots, lvl, rows)
        rf = cplx.new_zeros(cplx.shape[0], g, m * m * h)
        rf[..., lvl.band_flat] = cplx
        rmr = None
        if mv is not None:
            rmr = rf.real.new_zeros(cplx.shape[0], g, m * m * h)
            rmr[..., lvl.band_flat] = mv
            rmr = rmr.reshape(cplx.shape[0], g, m, m, h)
        return rf.reshape(cplx.shape[0], g, m, m, h), rmr

    def _band_values(self, t: PairTerms, rots: Tensor, lvl: _Level, rows: Tensor
                     ) -> tuple[Tensor, Tensor | None]:
        """Rotated reference spectrum `(b|1, G, Kb)` and mask `(b|1, G, Kb)` (or ``None``) at the
        band's coefficients of a cropped level, sampled at ``Rᵀ k`` (see :meth:`_rotated_reference`).
        """
        m = lvl.size
        n = t.p_ft.shape[-2]
        b, g = len(rows), rots.shape[1]
        spec = t.padded_spectrum_at(m)
        per_pair_ref = spec.shape[0] > 1
        if per_pair_ref:
            spec = spec[rows]
            rots = rots.expand(b, -1, 3, 3)
        big = 2 * m
        src = torch.einsum("bgji,kj->bgki", rots, lvl.band_k)                # Rᵀ k, (Rb, G, Kb, 3)
        u = (2.0 * src + m) * (2.0 / (big - 1)) - 1.0
        grid = u.flip(-1)[..., None, :]                                      # xyz, (Rb, G, Kb, 1, 3)
        if not per_pair_ref:
            grid = grid.reshape(1, -1, grid.shape[2], 1, 3)
        val = torch.nn.functional.grid_sample(spec, grid, mode="bilinear", padding_mode="zeros",
                                              align_corners=True)[..., 0]    # (N, 2, ·, Kb)
        rb = rots.shape[0]
        val = val.reshape(val.shape[0], 2, rb if not per_pair_ref else g, -1, lvl.band_k.shape[0])
        val = val.reshape(2, rb, g, -1) if not per_pair_ref else val.reshape(b, 2, g, -1)
        if not per_pair_ref:
            cplx = torch.complex(val[0], val[1])                             # (Rb, G, Kb)
        else:
            cplx = torch.complex(val[:, 0], val[:, 1])
        cplx = cplx * lvl.band_sign
        mv = None
        if t.r_mask_full is not None:
            mk = torch.fft.fftshift(t.r_mask_full, dim=_DIMS)[None, None]      # centre at n // 2
            um = (src + n // 2) * (2.0 / (n - 1)) - 1.0
            mg = um.flip(-1).reshape(1, -1, src.shape[2], 1, 3)
            mv = torch.nn.functional.grid_sample(mk, mg, mode="bilinear", padding_mode="zeros",
                                                 align_corners=True)[0, 0, ..., 0]
            mv = mv.reshape(cplx.shape[0], g, -1)
        return cplx, mv

    def local_logits(self, t: PairTerms, rots: Tensor, lvl: _Level, shift0: Tensor,
                     which: int = 1) -> Tensor:
        """Log posterior `(B, G)` of `(B, G, 3, 3)` rotations, the translation marginalised over
        ``shift0 + {−1, 0, 1}³`` voxels (`(B, 3)` centres): the correlation at these 27
        translations is a sum over the band's coefficients, no inverse FFT.
        """
        b = rots.shape[0]
        rows = torch.arange(b)
        flat = lvl.band_flat
        m = lvl.size
        p = _crop_rfft(t.p_ft, m).flatten(-3)[:, flat]                         # (B, Kb)
        pm = _crop_rfft(t.p_mask, m).flatten(-3)[:, flat]
        w = t.weights[:, 0][:, lvl.shell.flatten()[flat]]
        base = (pm * w * lvl.mult.flatten()[flat])[:, None]                    # (B, 1, Kb)
        v = torch.tensor([-1.0, 0.0, 1.0])
        off = torch.stack(torch.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
        shifts = shift0[:, None] + off[None]                                   # (B, T, 3)
        n = t.p_ft.shape[-2]
        arg = torch.einsum("kc,btc->bkt", lvl.band_k, shifts) * (2 * math.pi / n)
        phase = torch.polar(torch.ones_like(arg), arg)                         # (B, Kb, T)
        out = []
        per = max(1, self.chunk // max(1, rots.shape[1]))
        for s0 in range(0, b, per):
            sl = rows[s0:s0 + per]
            rf, mv = self._band_values(t, rots[sl], lvl, sl)                    # (b, G, Kb)
            msk = base[sl] if mv is None else base[sl] * mv
            num = torch.einsum("bgk,bkt->bgt", torch.conj(rf) * p[sl, None] * msk,
                               phase[sl]).real
            pp = (msk * (p[sl, None].real**2 + p[sl, None].imag**2)).sum(-1)
            rr = (msk * (rf.real**2 + rf.imag**2)).sum(-1)
            cc = num / torch.sqrt((pp * rr).clamp_min(1e-30))[..., None]
            k = t.log_kappa[sl, which].exp()[:, None, None]
            out.append(torch.logsumexp(k * cc, -1) - math.log(cc.shape[-1]))
        logit = torch.cat(out, 0)
        if self.local:
            logit = logit + self.head.log_prior(
                geodesic_distance_deg(rots, torch.eye(3).expand_as(rots)))
        return logit

    def rotation_logits(self, t: PairTerms, rots: Tensor, lvl: _Level, which: int,
                        rows: Tensor | None = None) -> Tensor:
        """Log posterior (unnormalised) `(B, G)`: translation-marginal likelihood + prior."""
        kappa = t.log_kappa[rows if rows is not None else slice(None), which].exp()
        out = []
        b_all = t.p_ft.shape[0] if rows is None else len(rows)
        idx = torch.arange(b_all) if rows is None else rows
        per = max(1, self.chunk // max(1, rots.shape[1]))
        for s0 in range(0, b_all, per):
            sl = idx[s0:s0 + per]
            rr = rots if rots.shape[0] == 1 else rots[s0:s0 + per]
            cc = self.cc_maps(t, rr, lvl, sl)
            k = kappa[s0:s0 + per, None, None]
            out.append(torch.logsumexp(k * cc, -1) - math.log(cc.shape[-1]))
        logit = torch.cat(out, 0)
        if self.local:
            ang = geodesic_distance_deg(rots, torch.eye(3).expand_as(rots))
            logit = logit + self.head.log_prior(ang)
        return logit

    def translation(self, t: PairTerms, rot: Tensor, rows: Tensor | None = None
                    ) -> tuple[Tensor, Tensor]:
        """Posterior-mean translation `(B', 3)` at rotations `(B', 3, 3)` of pairs ``rows``
        (default: all, in order) and its peak mass `(B',)`.
        """
        n = t.p_ft.shape[-2]
        lvl = self.level(n, n)
        rows = torch.arange(rot.shape[0]) if rows is None else rows
        kappa = t.log_kappa[rows, 2].exp()
        shifts, peak = [], []
        per = max(1, self.chunk // 8)
        for s0 in range(0, rot.shape[0], per):
            sel = torch.arange(s0, min(s0 + per, rot.shape[0]))
            cc_full = self.cc_maps(t, rot[sel][:, None], lvl, rows[sel], all_shifts=True,
                                   weight_set=1)[:, 0]
            cc_full = cc_full.reshape(-1, n, n, n)
            sub = _subvoxel_offsets(cc_full).reshape(len(sel), -1, 3)[:, lvl.allowed]
            cc = cc_full.flatten(1)[:, lvl.allowed]
            q = torch.softmax(kappa[sel, None] * cc, -1)
            shifts.append(torch.einsum("ba,bac->bc", q, lvl.shifts[None] + sub))
            peak.append(q.amax(-1))
        return torch.cat(shifts), torch.cat(peak)

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
        terms = self.pair_terms(p, r, particle_mask, reference_mask)
        rot, conf = self.search_rotation(terms)
        shifts, _ = self.translation(terms, rot)
        return AlignResult(rot, shifts, conf, time.perf_counter() - t0)

    def search_rotation(self, t: PairTerms) -> tuple[Tensor, Tensor]:
        """Coarse-to-fine rotation posterior; returns the chordal mean and its resultant length."""
        n = t.p_ft.shape[-2]
        b = t.p_ft.shape[0]
        coarse = self.level(n, self.coarse_size)
        fine = self.level(n, self.fine_size)
        logit = self.rotation_logits(t, self.grid[None], coarse, 0)            # (B, G)
        prob = torch.softmax(logit, -1)
        conf = chordal_mean(prob, self.grid[None])[1]
        if self.local:
            centres = chordal_mean(prob, self.grid[None])[0][:, None]          # (B, 1, 3, 3)
        else:
            order = prob.argsort(-1, descending=True)[:, : self.max_candidates]
            mass = prob.gather(1, order).cumsum(-1)
            k = int(((mass < self.candidate_mass).sum(-1) + 1).clamp(
                max=self.max_candidates).max())
            centres = self.grid[order[:, :k]]                                  # (B, k, 3, 3)
        k = centres.shape[1]
        ar = torch.arange(b)
        # translation of each candidate centre, the fine stage marginalises around it
        t0, _ = self.translation(t, centres.reshape(-1, 3, 3), rows=ar.repeat_interleave(k))
        for step in self.fine_steps_deg:
            off = offset_grid(step)                                            # (27, 3, 3)
            cand = (centres[:, :, None] @ off[None, None]).reshape(b * k, 27, 3, 3)
            fl = self.local_logits(_repeat_terms(t, k), cand, fine, t0).reshape(b, k, 27)
            best = torch.logsumexp(fl, -1).argmax(-1)                          # (B,)
            fp = torch.softmax(fl[ar, best], -1)
            mean, _ = chordal_mean(fp, cand.reshape(b, k, 27, 3, 3)[ar, best])
            centres = mean[:, None]
            t0 = t0.reshape(b, k, 3)[ar, best]
            k = 1
        return centres[:, 0], conf


def _repeat_terms(t: PairTerms, k: int) -> PairTerms:
    """The pair terms with every pair repeated ``k`` times (one row per fine-stage candidate)."""
    if k == 1:
        return t
    def rep(x: Tensor) -> Tensor:
        return x if x.shape[0] == 1 else x.repeat_interleave(k, 0)

    small = None if t.small is None else {key: rep(v) for key, v in t.small.items()}
    return PairTerms(rep(t.p_ft), rep(t.r), rep(t.p_mask), t.r_mask_full, rep(t.weights),
                     rep(t.log_kappa), small)


def _subvoxel_offsets(cc: Tensor) -> Tensor:
    """`(B, n, n, n, 3)` parabolic peak offsets (±0.5 voxel) of each voxel of periodic maps."""
    offs = []
    for ax in (1, 2, 3):
        lo = torch.roll(cc, 1, ax)
        hi = torch.roll(cc, -1, ax)
        den = lo - 2 * cc + hi
        off = torch.where(den < -1e-12, 0.5 * (lo - hi) / den, torch.zeros_like(cc))
        offs.append(off.clamp(-0.5, 0.5))
    return torch.stack(offs, -1)
