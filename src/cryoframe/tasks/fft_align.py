"""Exhaustive FFT-based subtomogram alignment with missing-wedge-constrained correlation.

The Fourier alignment core used by the learned aligner's refinement and by averaging, and the
classical reference of the sub5 suites (re-exported as :mod:`cryoframe.baselines.fft_align`), in the spirit of H-T align (Xu et al. 2012) and of
the constrained correlation of Förster et al. (2008): for every rotation ``R`` of a grid on SO(3)
the reference is rotated, both volumes are restricted to the Fourier region they both sample
(the particle's wedge ∩ the rotated reference's wedge, band-limited, DC removed) and the
normalised cross-correlation for *all* translations is one inverse FFT:

    cc_R(t) = Σ_k M(k) conj(R̂_R(k)) P̂(k) e^{2πi k·t} / sqrt(Σ_M |P̂|² · Σ_M |R̂_R|²)

The best ``(R, t)`` is refined locally by a pattern search over small rotations about the
three axes (step halved when no neighbour improves), and the translation by a parabolic fit to
the correlation peak.

Speed (CPU): the global search runs on Fourier-cropped volumes (``coarse_size`` voxels, 16 for
32³ boxes, enough for the low resolution a 30° step resolves), so it costs one 16³ inverse FFT
per particle and grid rotation; the reference is rotated once per grid rotation and shared by
all particles. The local refinement rotates the reference per particle at full size.

Pose convention (docs/architecture.md): the result ``(R, t)`` says
``particle ≈ shift(rotate(reference, R), t)``, i.e. ``particle(x) = reference(Rᵀ(x − c − t) + c)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.wedge import rotate_fourier_mask, wedge_mask
from cryoframe.geometry.grids import radial_frequency
from cryoframe.geometry.rotations import axis_angle_to_matrix, geodesic_distance_deg, so3_grid
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier

__all__ = ["AlignResult", "FFTAligner", "rotate_fourier_mask", "wedge_mask"]

_DIMS = (-3, -2, -1)


@dataclass
class AlignResult:
    """Poses found by an aligner: ``particle ≈ shift(rotate(reference, R), t)``."""

    rotations: Tensor       #: `(B, 3, 3)` active zyx rotations
    shifts_zyx_px: Tensor   #: `(B, 3)` translations in voxels (zyx)
    scores: Tensor          #: `(B,)` normalised constrained correlation at the optimum
    seconds: float = 0.0    #: wall time of the search


def _low_frequency_index(m: int, n: int) -> Tensor:
    """`(m,)` indices, along a full (fftfreq-ordered) axis of ``n``, of the ``m`` lowest
    frequencies: non-negative 0..(m-1)//2 and negative -m//2..-1, for odd and even ``m`` alike
    (an even block keeps its Nyquist plane on the negative side).
    """
    return torch.cat([torch.arange((m + 1) // 2), torch.arange(n - m // 2, n)])


def _crop_rfft(spec: Tensor, m: int) -> Tensor:
    """Keep the `(m, m, m // 2 + 1)` low-frequency block of `(..., n, n, n // 2 + 1)` spectra."""
    n = spec.shape[-3]
    if m == n:
        return spec
    idx = _low_frequency_index(m, n)
    return spec.index_select(-3, idx).index_select(-2, idx)[..., : m // 2 + 1]


def _rfft_weights(n: int, m: int) -> Tensor:
    """Multiplicity of each rfft coefficient in the full spectrum (1 or 2), `(m, m, m // 2 + 1)`."""
    w = torch.full((m // 2 + 1,), 2.0)
    w[0] = 1.0
    if m % 2 == 0:
        w[-1] = 1.0
    return w.expand(m, m, m // 2 + 1)


def _signed_index(m: int) -> Tensor:
    i = torch.arange(m)
    return torch.where(i > m // 2, i - m, i).to(torch.float32)


@dataclass
class _Level:
    size: int
    band: Tensor     # (m, m, m//2+1) band-pass (DC = 0)
    weights: Tensor  # (m, m, m//2+1) multiplicity of each rfft coefficient in the full spectrum
    allowed_idx: Tensor  # flat indices of the (m, m, m) translations within max_shift


class FFTAligner:
    """Exhaustive rotational search + FFT translational search with wedge-constrained correlation.

    Parameters
    ----------
    step_deg : float
        Angular step of the global grid (:func:`cryoframe.geometry.rotations.so3_grid`); the
        grid's covering radius is ≈ 0.9 × step.
    refine_steps : int
        Pattern-search iterations of the local refinement (0: grid pose only). Each costs 6
        rotations of the reference per particle.
    refine_start_deg : float, optional
        First refinement step (default ``step_deg / 3``).
    max_shift_px : float, optional
        Largest translation searched (Euclidean, voxels); default ``n / 4``.
    lowpass_cycles_per_px : float
        Band limit of the correlation (cycles/voxel of the full-size box).
    coarse_size : int, optional
        Box size (voxels) of the global search, Fourier-cropped; default ``n // 2`` for
        ``n >= 32``, else ``n``.
    local_range_deg : float, optional
        Restrict the global grid to rotations within this angle of the identity (the
        ``local`` alignment range); ``None`` searches all of SO(3).
    chunk : int
        Number of (particle, rotation) correlation maps held in memory at once.
    """

    def __init__(
        self,
        step_deg: float = 30.0,
        refine_steps: int = 4,
        refine_start_deg: float | None = None,
        max_shift_px: float | None = None,
        lowpass_cycles_per_px: float = 0.5,
        coarse_size: int | None = None,
        local_range_deg: float | None = None,
        chunk: int = 2048,
    ) -> None:
        if step_deg <= 0 or refine_steps < 0:
            raise InputError("invalid aligner settings", field="step_deg",
                             expected="step_deg > 0 and refine_steps >= 0")
        self.step_deg = float(step_deg)
        self.refine_steps = int(refine_steps)
        self.refine_start_deg = refine_start_deg or step_deg / 3.0
        self.max_shift_px = max_shift_px
        self.lowpass = float(lowpass_cycles_per_px)
        self.coarse_size = coarse_size
        self.local_range_deg = local_range_deg
        self.chunk = int(chunk)
        grid = so3_grid(self.step_deg)
        if local_range_deg is not None:

            eye = torch.eye(3).expand_as(grid)
            grid = grid[geodesic_distance_deg(grid, eye) <= local_range_deg + self.step_deg / 2]
            grid = torch.cat([torch.eye(3)[None], grid])
        self.grid = grid

    # ------------------------------------------------------------------ helpers
    def _level(self, n: int, m: int) -> _Level:
        max_shift = self.max_shift_px if self.max_shift_px is not None else n / 4
        freq = radial_frequency((m, m, m), rfft=True) * (m / n)  # cycles per full-size voxel
        band = ((freq > 0) & (freq <= min(self.lowpass, 0.5 * m / n))).to(torch.float32)
        s = _signed_index(m) * (n / m)
        dist = torch.sqrt(s[:, None, None] ** 2 + s[None, :, None] ** 2 + s[None, None, :] ** 2)
        allowed = torch.nonzero((dist <= max_shift + 1e-6).flatten()).flatten()
        return _Level(m, band, _rfft_weights(n, m), allowed)

    def _best(self, pm_ft: Tensor, amp: Tensor, r_ft: Tensor, r_mask: Tensor | None,
              lvl: _Level) -> tuple[Tensor, Tensor]:
        """Best normalised correlation over allowed shifts.

        ``pm_ft`` `(Bp, 1, K…)`: particle spectrum × particle mask × band; ``amp`` `(Bp, 1, K)`:
        its multiplicity-weighted power and weights ``(w·pm·band·|P|², w·pm·band)`` stacked on a
        first axis; ``r_ft`` `(Br, G, K…)`: rotated reference spectra; ``r_mask`` `(Br, G, K…)`
        rotated reference masks or ``None``. Returns ``(score, flat shift index)`` of `(B, G)`.
        """
        m = lvl.size
        rk = r_ft.flatten(-3)
        if r_mask is not None:
            rm = r_mask.flatten(-3)
            r_pow = rm * (rk.real**2 + rk.imag**2)
            pp = (amp[0] @ rm.transpose(-1, -2)).squeeze(-2)
            num_ft = torch.conj(r_ft * r_mask) * pm_ft
        else:
            r_pow = rk.real**2 + rk.imag**2
            pp = amp[0].sum(-1)
            num_ft = torch.conj(r_ft) * pm_ft
        rr = (amp[1] @ r_pow.transpose(-1, -2)).squeeze(-2)
        cc = torch.fft.irfftn(num_ft, s=(m, m, m), dim=_DIMS).flatten(-3)
        val, arg = cc.index_select(-1, lvl.allowed_idx).max(-1)
        norm = torch.sqrt((pp * rr).clamp_min(1e-30)) / (m**3)
        return val / norm, lvl.allowed_idx[arg]

    def _prep(self, p_ft: Tensor, p_mask: Tensor, lvl: _Level) -> tuple[Tensor, Tensor]:
        """Particle-side terms of :meth:`_best` from `(B, K…)` spectra and `(1|B, K…)` masks."""
        pm = p_mask * lvl.band
        pm_ft = (p_ft * pm)[:, None]
        w = (pm * lvl.weights).flatten(-3)
        amp = torch.stack([w * (p_ft.real**2 + p_ft.imag**2).flatten(-3), w.expand_as(
            p_ft.real.flatten(-3))])[:, :, None]
        return pm_ft, amp

    # ------------------------------------------------------------------ public API
    def align_to_reference(
        self,
        particles,
        reference,
        particle_mask: Tensor | None = None,
        reference_mask: Tensor | None = None,
        init_rotations: Tensor | None = None,
    ) -> AlignResult:
        """Find ``(R, t)`` with ``particle ≈ shift(rotate(reference, R), t)`` for each particle.

        Parameters
        ----------
        particles : array or Tensor
            `(B, n, n, n)` subtomograms (zyx).
        reference : array or Tensor
            `(n, n, n)` one reference for all, or `(B, n, n, n)` one per particle (pairs).
        particle_mask : Tensor, optional
            `(n, n, n)` or `(B, n, n, n)` full-spectrum Fourier mask (fftfreq order) of the
            region each particle samples, e.g. :func:`wedge_mask`; ``None``: all of it.
        reference_mask : Tensor, optional
            `(n, n, n)` full-spectrum mask of the reference in its own frame (rotated with it);
            ``None``: the reference samples everything (an average).
        init_rotations : Tensor, optional
            `(B, 3, 3)` starting poses (e.g. a network's prediction): the global grid search is
            skipped and only the local refinement and the translation search run.

        Returns
        -------
        AlignResult
        """
        t0 = time.perf_counter()
        p = torch.as_tensor(np.asarray(particles) if not isinstance(particles, Tensor)
                            else particles).to(torch.float32)
        r = torch.as_tensor(np.asarray(reference) if not isinstance(reference, Tensor)
                            else reference).to(torch.float32)
        if p.ndim == 3:
            p = p[None]
        if p.ndim != 4 or len(set(p.shape[1:])) != 1 or r.shape[-3:] != p.shape[-3:]:
            raise InputError(f"particles {tuple(p.shape)} and reference {tuple(r.shape)}",
                             field="particles", expected="(B, n, n, n) cubes and an (n, n, n) "
                             "or (B, n, n, n) reference of the same size")
        b, n = p.shape[0], p.shape[-1]
        per_particle_ref = r.ndim == 4
        if per_particle_ref and r.shape[0] != b:
            raise InputError("one reference per particle expected", field="reference",
                             expected=f"({b}, {n}, {n}, {n})")
        m = self.coarse_size or (n // 2 if n >= 32 else n)
        half = n // 2 + 1
        p_mask = (torch.ones(1, n, n, half) if particle_mask is None
                  else torch.as_tensor(particle_mask, dtype=torch.float32)[..., :half])
        if p_mask.ndim == 3:
            p_mask = p_mask[None]
        rm_full = (None if reference_mask is None
                   else torch.as_tensor(reference_mask, dtype=torch.float32))
        p_ft = torch.fft.rfftn(p, dim=_DIMS)                                     # (B, n, n, h)
        r_ft_full = torch.fft.rfftn(r, dim=_DIMS)

        if init_rotations is not None:
            rot = torch.as_tensor(init_rotations, dtype=torch.float32).reshape(b, 3, 3).clone()
        else:
            rot = self._global_search(p_ft, p_mask, r_ft_full, rm_full, per_particle_ref, n, m)

        # ---- local refinement at full size: 6 neighbours ±δ about z, y, x + a parabolic step
        full = self._level(n, n)
        delta = math.radians(self.refine_start_deg)
        axes = torch.eye(3)
        ar = torch.arange(b)
        frac = torch.zeros(b, 3)
        for it in range(self.refine_steps):
            if it in (0, self.refine_steps // 2):
                # Re-centre the particle by the sub-voxel part of its shift, so that the integer
                # translation search does not let a small rotation compensate for it.
                t_now, _ = self._final_shift(p_ft, p_mask, r, rm_full, rot, per_particle_ref,
                                             full)
                frac = t_now - torch.round(t_now)
                pc_ft = torch.fft.rfftn(shift_volumes_fourier(p, -frac), dim=_DIMS)
                pm_ft, amp = self._prep(pc_ft, p_mask, full)
                ctx = (pm_ft, amp, r, rm_full, per_particle_ref, full)
                cur, _ = self._eval(ctx, rot[:, None])
                cur = cur[:, 0]
            cands = [rot @ axis_angle_to_matrix(axes[a], torch.tensor(sg * delta))
                     for sg in (1.0, -1.0) for a in range(3)]
            sc, _ = self._eval(ctx, torch.stack(cands, 1))                     # (B, 6)
            cp, cm = sc[:, :3], sc[:, 3:]
            curv = cp + cm - 2 * cur[:, None]
            step = torch.where(curv < -1e-9, 0.5 * (cp - cm) / (-curv).clamp_min(1e-9),
                               torch.sign(cp - cm))
            vec = step.clamp(-1, 1) * delta                                     # (B, 3) rad
            ang = vec.norm(dim=1).clamp_min(1e-9)
            fit = rot @ axis_angle_to_matrix(vec / ang[:, None], ang)
            sf, _ = self._eval(ctx, fit[:, None])
            allc = torch.cat([cur[:, None], sc, sf], 1)                        # (B, 8)
            allr = torch.cat([rot[:, None], torch.stack(cands, 1), fit[:, None]], 1)
            cur, arg = allc.max(1)
            rot = allr[ar, arg]
            delta /= 2

        # ---- translation with sub-voxel peak fit at the final rotation
        shifts, score = self._final_shift(p_ft, p_mask, r, rm_full, rot, per_particle_ref, full)
        return AlignResult(rot, shifts, score, time.perf_counter() - t0)

    def _global_search(self, p_ft, p_mask, r_ft_full, rm_full, per_particle_ref, n, m):
        """Best grid rotation `(B, 3, 3)` on Fourier-cropped `m³` volumes."""
        b = p_ft.shape[0]
        coarse = self._level(n, m)
        pm_ft_c, amp_c = self._prep(_crop_rfft(p_ft, m), _crop_rfft(p_mask, m), coarse)
        r_small = torch.fft.irfftn(_crop_rfft(r_ft_full, m), s=(m, m, m), dim=_DIMS)
        rm_small = None
        if rm_full is not None:
            rm_small = torch.fft.ifftshift(
                _center_crop(torch.fft.fftshift(rm_full, dim=_DIMS), m), dim=_DIMS)
        g = self.grid
        best = torch.full((b,), -3.0)
        best_g = torch.zeros(b, dtype=torch.long)
        g_chunk = max(1, self.chunk // b)
        for s0 in range(0, len(g), g_chunk):
            rots = g[s0:s0 + g_chunk]                                            # (G, 3, 3)
            if per_particle_ref:
                vols = self._rotated_refs(r_small[:, None], rots[None].expand(b, -1, 3, 3), True)
            else:
                vols = rotate_volumes(r_small, rots)[None]                      # (1, G, m, m, m)
            r_mask = None
            if rm_small is not None:
                r_mask = rotate_fourier_mask(rm_small, rots)[None]
            score, _ = self._best(pm_ft_c, amp_c, torch.fft.rfftn(vols, dim=_DIMS), r_mask,
                                  coarse)                                        # (B, G)
            val, arg = score.max(1)
            upd = val > best
            best = torch.where(upd, val, best)
            best_g = torch.where(upd, arg + s0, best_g)
        return g[best_g].clone()

    def _rotated_refs(self, r: Tensor, rots: Tensor, per_particle_ref: bool) -> Tensor:
        """Rotate `(n,n,n)` (shared) or `(B, 1, n, n, n)` (per particle) by `(B, L, 3, 3)`."""
        lead = rots.shape[:-2]
        flat = rots.reshape(-1, 3, 3)
        if per_particle_ref:
            vols = r.expand(*lead, *r.shape[-3:]).reshape(-1, *r.shape[-3:])
            out = rotate_volumes(vols, flat)
        else:
            out = rotate_volumes(r, flat)
        return out.reshape(*lead, *r.shape[-3:])

    def _eval(self, ctx, rots: Tensor) -> tuple[Tensor, Tensor]:
        """Scores `(B, L)` of each particle against the reference rotated by its `(B, L, 3, 3)`."""
        pm_ft, amp, r, rm_full, per_particle_ref, lvl = ctx
        b, per = rots.shape[:2]
        n = lvl.size
        step = max(1, self.chunk // (4 * per))
        scores, idx = [], []
        for s0 in range(0, b, step):
            sl = slice(s0, s0 + step)
            vols = self._rotated_refs(r[sl, None] if per_particle_ref else r, rots[sl],
                                      per_particle_ref)
            r_mask = None
            if rm_full is not None:
                r_mask = rotate_fourier_mask(rm_full, rots[sl].reshape(-1, 3, 3)).reshape(
                    *rots[sl].shape[:-2], n, n, n // 2 + 1)
            pm_b = pm_ft[sl] if pm_ft.shape[0] == b else pm_ft
            amp_b = amp[:, sl] if amp.shape[1] == b else amp
            sc, ix = self._best(pm_b, amp_b, torch.fft.rfftn(vols, dim=_DIMS), r_mask, lvl)
            scores.append(sc)
            idx.append(ix)
        return torch.cat(scores, 0), torch.cat(idx, 0)

    def _final_shift(self, p_ft, p_mask, r, rm_full, rot, per_particle_ref, lvl: _Level):
        """Translation (parabolic sub-voxel peak) and score at the final rotations `(B, 3, 3)`."""
        n = lvl.size
        vols = self._rotated_refs(r[:, None] if per_particle_ref else r, rot[:, None],
                                  per_particle_ref)[:, 0]
        rft = torch.fft.rfftn(vols, dim=_DIMS)
        mask = p_mask * lvl.band
        if rm_full is not None:
            mask = mask * rotate_fourier_mask(rm_full, rot)
        num = torch.fft.irfftn(torch.conj(rft) * p_ft * mask, s=(n, n, n), dim=_DIMS)
        wm = mask * lvl.weights
        pp = (wm * (p_ft.real**2 + p_ft.imag**2)).sum(_DIMS)
        rr = (wm * (rft.real**2 + rft.imag**2)).sum(_DIMS)
        cc = num / (torch.sqrt((pp * rr).clamp_min(1e-30)) / n**3)[:, None, None, None]
        b = cc.shape[0]
        flat_cc = cc.flatten(1)
        sel = flat_cc.index_select(1, lvl.allowed_idx)
        score, arg = sel.max(1)
        flat = lvl.allowed_idx[arg]
        idx = torch.stack([flat // (n * n), (flat // n) % n, flat % n], 1)
        sub = torch.zeros(b, 3)
        ar = torch.arange(b)
        for a in range(3):
            lo, hi = idx.clone(), idx.clone()
            lo[:, a] = (lo[:, a] - 1) % n
            hi[:, a] = (hi[:, a] + 1) % n
            cl = cc[ar, lo[:, 0], lo[:, 1], lo[:, 2]]
            ch = cc[ar, hi[:, 0], hi[:, 1], hi[:, 2]]
            den = cl - 2 * score + ch
            off = torch.where(den < -1e-12, 0.5 * (cl - ch) / den, torch.zeros_like(den))
            sub[:, a] = off.clamp(-0.5, 0.5)
        signed = torch.where(idx > n // 2, idx - n, idx).to(torch.float32)
        return signed + sub, score


def _center_crop(x: Tensor, m: int) -> Tensor:
    """Central `(m, m, m)` block of `(..., n, n, n)` arrays whose centre is at index n // 2."""
    n = x.shape[-1]
    s = n // 2 - m // 2
    return x[..., s:s + m, s:s + m, s:s + m]
