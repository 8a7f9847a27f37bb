"""Homogeneous refinement by projection matching with independent gold-standard halves.

Each half (``rlnRandomSubset`` 1 / 2, else a seeded split) is aligned only against its own
reference, so the half-map FSC stays an honest resolution estimate:

1. both halves start from the given reference low-passed to ``initial_lowpass_angstrom``
   (raised-cosine edge);
2. **global search** (when the STAR has no poses, or ``global_search=True``): every particle
   is compared with central slices of its half's reference on an SO(3) grid
   (:func:`cryoframe.geometry.rotations.so3_grid`, ``global_step_deg``) and a 5 × 5 (or 3 × 3)
   grid of shifts around the current ones, spaced so the phase error at the search radius
   stays ≤ π/2;
3. **local searches**: candidates ``ΔR · R`` for ``ΔR`` = identity and rotations by ``δ`` and
   ``δ/2`` about 18 + 8 Fibonacci axes, times a 3 × 3 grid of shift offsets ``±δ_s``;
   ``δ`` and ``δ_s`` halve every iteration (from ``global_step_deg / 2`` and 1 px);
4. after each search the halves are reconstructed (:mod:`cryoframe.recon.insertion`, Wiener
   maps from the half-map FSC) and become the next references; the search radius follows the
   FSC (**frequency marching**: shells up to ``1.2 × s₀.₁₄₃ + 2``, at most Nyquist − 1);
5. stop when the 0.143 resolution has not improved by 1 % for two iterations, or after
   ``max_iterations``.

Score of a particle ``X`` (spectrum of the centred image, shells ≤ the search radius) against
a slice ``P`` with CTF ``C``, shift ``t`` and noise weights ``w(s) = 1 / mean_shell |X|²``::

    score = Σ w · Re(conj(X · e^{2πi k·t}) · C · P) / √(Σ w · C² |P|²)

(the maximum over the amplitude of the Gaussian log-likelihood ``−‖X − a C P‖²_w``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cryoframe._atomic import atomic_write_text
from cryoframe._errors import InputError
from cryoframe.fourier.filters import lowpass
from cryoframe.geometry.rotations import axis_angle_to_matrix, fibonacci_sphere, so3_grid
from cryoframe.io.mrc import read_mrc
from cryoframe.io.star import particles_with_poses, read_particles, write_particles
from cryoframe.recon.halves import HalfMapResult, finish_half_maps
from cryoframe.recon.insertion import FourierAccumulator
from cryoframe.recon.reconstruct import (
    ParticleSet,
    ReconstructionRun,
    ctf_at_points,
    iter_image_batches,
    read_particle_set,
    write_reconstruction,
)
from cryoframe.simulate.projector import FourierProjector

__all__ = ["RefineConfig", "RefineResult", "SliceMatcher", "refine_particles", "refine_star"]


@dataclass(frozen=True)
class RefineConfig:
    """Refinement parameters (lengths in Å, angles in degrees)."""

    initial_lowpass_angstrom: float = 30.0
    global_search: bool | None = None  # None: only when the STAR has no angles
    global_step_deg: float = 10.0
    max_iterations: int = 8
    batch_size: int = 256
    max_shift_angstrom: float | None = None  # None: 0.1 × box


@dataclass
class RefineResult:
    """Refined poses, final maps and the per-iteration history."""

    rotations: Tensor
    shifts_yx_angstrom: Tensor
    maps: HalfMapResult
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _local_perturbations(delta_deg: float) -> Tensor:

    axes = [fibonacci_sphere(18).to(torch.float32), fibonacci_sphere(8).to(torch.float32)]
    angles = [math.radians(delta_deg), math.radians(delta_deg / 2)]
    mats = [torch.eye(3)[None]]
    for a, ang in zip(axes, angles):
        mats.append(axis_angle_to_matrix(a, torch.full((len(a),), ang)).to(torch.float32))
    return torch.cat(mats)  # (27, 3, 3)


class SliceMatcher:
    """Central slices of one reference at the in-band frequencies of a box ``n``.

    Parameters
    ----------
    reference : Tensor
        `(n, n, n)` map (z, y, x), centre ``n // 2``.
    radius_shells : float
        Frequencies with ``|k| · n ≤ radius_shells`` are compared.
    """

    def __init__(self, reference: Tensor, radius_shells: float) -> None:

        self.n = n = reference.shape[-1]
        self.projector = FourierProjector(reference)
        ky = torch.fft.fftfreq(n) * n
        kx = torch.fft.rfftfreq(n) * n
        KY, KX = torch.meshgrid(ky, kx, indexing="ij")
        r = torch.sqrt(KY ** 2 + KX ** 2)
        sel = (r <= radius_shells) & ~((KX == 0) & (KY < 0))
        self.sel = sel.flatten().nonzero().squeeze(1)
        self.k = torch.stack([torch.zeros_like(KY), KY, KX], -1).reshape(-1, 3)[self.sel]
        self.k = self.k.to(torch.float32)  # (m, 3) in shells
        self.shell = torch.round(r.flatten()[self.sel]).to(torch.int64)
        # the kx = 0 column counts once (its Friedel half is not in the list)
        self.mult = torch.where(self.k[:, 2] == 0, 1.0, 2.0)

    def slices(self, rotations: Tensor) -> Tensor:
        """`(..., m)` complex slices ``F(Rᵀ k)`` for `(..., 3, 3)` rotations."""
        q = torch.einsum("...ji,mj->...mi", rotations.to(torch.float32), self.k / self.n)
        return self.projector._sample(q)

    def spectra(self, images: Tensor) -> Tensor:
        """`(b, m)` spectra of `(b, n, n)` images about their centre ``n // 2``."""
        n = self.n
        spec = torch.fft.rfft2(torch.roll(images, (-(n // 2), -(n // 2)), (-2, -1)))
        return spec.reshape(images.shape[0], -1)[:, self.sel]

    def shifted(self, spec: Tensor, shifts_yx_px: Tensor) -> Tensor:
        """Re-centre ``spec`` `(b, m)` by shifts `(b, ..., 2)` → `(b, ..., m)`."""
        ph = (2 * math.pi / self.n) * (shifts_yx_px[..., 0:1] * self.k[:, 1]
                                        + shifts_yx_px[..., 1:2] * self.k[:, 2])
        extra = spec.reshape(spec.shape[0], *([1] * (shifts_yx_px.dim() - 2)), -1)
        return extra * torch.polar(torch.ones_like(ph), ph)


def _noise_weights(matcher: SliceMatcher, spec: Tensor) -> Tensor:
    n_sh = int(matcher.shell.max()) + 1
    p = (spec.real ** 2 + spec.imag ** 2).mean(0).to(torch.float64)
    tot = torch.zeros(n_sh, dtype=torch.float64).index_add_(0, matcher.shell, p)
    cnt = torch.zeros(n_sh, dtype=torch.float64).index_add_(0, matcher.shell,
                                                            torch.ones_like(p))
    sig = (tot / cnt.clamp_min(1)).clamp_min(1e-30)
    return (matcher.mult / sig[matcher.shell]).to(torch.float32)  # (m,)


def _global_search(matcher: SliceMatcher, grid: Tensor, spec: Tensor, ctf: Tensor,
                   w: Tensor, shifts_px: Tensor, offsets_px: Tensor, chunk: int = 2048,
                   ) -> tuple[Tensor, Tensor]:
    """Best grid rotation and shift (among ``shifts_px + offsets_px``) per particle.

    ``spec`` `(b, m)` is the uncentred image spectrum; returns `(b,)` grid indices and `(b, 2)`
    shifts in pixels.
    """
    t = shifts_px[:, None] + offsets_px[None]  # (b, s, 2)
    X = matcher.shifted(spec, t)  # (b, s, m)
    b, ns, m = X.shape
    xc = (torch.conj(X) * (ctf * w)[:, None]).reshape(b * ns, m)
    best_val = torch.full((b,), -torch.inf)
    best_idx = torch.zeros(b, dtype=torch.int64)
    best_s = torch.zeros(b, dtype=torch.int64)
    c2w = ctf * ctf * w
    for i in range(0, len(grid), chunk):
        P = matcher.slices(grid[i:i + chunk])  # (g, m)
        num = (xc.real @ P.real.T - xc.imag @ P.imag.T).reshape(b, ns, -1)
        den = torch.sqrt((c2w @ (P.real ** 2 + P.imag ** 2).T).clamp_min(1e-30))  # (b, g)
        sc = (num / den[:, None]).reshape(b, -1)
        v, j = sc.max(1)
        better = v > best_val
        best_val = torch.where(better, v, best_val)
        best_idx = torch.where(better, j % P.shape[0] + i, best_idx)
        best_s = torch.where(better, j // P.shape[0], best_s)
    return best_idx, t[torch.arange(b), best_s]


def _shift_offsets(n: int, radius_shells: float, max_shift_px: float, max_k: int = 2) -> Tensor:
    """3 × 3 (or 5 × 5) offsets with a step keeping the phase error at the edge ≤ π/2."""
    step = max(0.5, n / (4.0 * max(radius_shells, 1.0)))
    k = min(max_k, 2 if 2 * step <= max_shift_px else 1)
    r = torch.arange(-k, k + 1, dtype=torch.float32) * step
    return torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)


def _local_search(matcher: SliceMatcher, rots: Tensor, shifts_px: Tensor, spec: Tensor,
                  ctf: Tensor, w: Tensor, delta_deg: float, delta_px: float,
                  max_shift_px: float) -> tuple[Tensor, Tensor]:
    """Best ``ΔR · R`` and shift per particle among the local candidates."""
    pert = _local_perturbations(delta_deg)  # (c, 3, 3)
    cand = pert[None] @ rots[:, None]  # (b, c, 3, 3)
    P = matcher.slices(cand)  # (b, c, m)
    offs = torch.tensor([[dy, dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                        dtype=torch.float32) * delta_px  # (s, 2)
    t = (shifts_px[:, None] + offs[None]).clamp(-max_shift_px, max_shift_px)  # (b, s, 2)
    X = matcher.shifted(spec, t)  # (b, s, m)
    xc = torch.conj(X) * (ctf * w)[:, None]  # (b, s, m)
    num = torch.einsum("bsm,bcm->bsc", xc.real, P.real) - \
        torch.einsum("bsm,bcm->bsc", xc.imag, P.imag)
    den = torch.sqrt(torch.einsum("bm,bcm->bc", ctf * ctf * w,
                                  P.real ** 2 + P.imag ** 2).clamp_min(1e-30))
    score = num / den[:, None]  # (b, s, c)
    b = score.shape[0]
    flat = score.reshape(b, -1).argmax(1)
    si, ci = flat // score.shape[2], flat % score.shape[2]
    ar = torch.arange(b)
    return cand[ar, ci], t[ar, si]


def _reconstruct(ps: ParticleSet, rots: Tensor, shifts_px: Tensor, batch_size: int,
                 mask_radius_px: float | None) -> HalfMapResult:
    n = ps.box_size_px
    accs = {1: FourierAccumulator(n, 1), 2: FourierAccumulator(n, 1)}
    for rows, imgs in iter_image_batches(ps, batch_size):
        x = torch.from_numpy(imgs)
        for h, acc in accs.items():
            m = ps.subset[rows] == h
            if not m.any():
                continue
            sel = rows[m]
            spec = acc.image_spectra(x[torch.from_numpy(m)], shifts_px[sel])
            ctf = None if ps.ctf is None else ctf_at_points(acc, ps.pixel_size_angstrom,
                                                           ps.ctf, sel)
            acc.insert(spec, rots[sel], ctf, ps.premultiplied)
    return finish_half_maps(accs[1], accs[2], ps.pixel_size_angstrom, mask_radius_px)


def _ctf_for(matcher: SliceMatcher, ps: ParticleSet, rows: np.ndarray) -> Tensor:
    if ps.ctf is None:
        return torch.ones(len(rows), len(matcher.sel))

    class _Grid:  # ctf_at_points needs P, rfft_indices, k_points of an unpadded grid
        P = matcher.n
        rfft_indices = matcher.sel
        k_points = matcher.k

    return ctf_at_points(_Grid, ps.pixel_size_angstrom, ps.ctf, rows)  # type: ignore[arg-type]


def refine_particles(ps: ParticleSet, reference: Tensor, config: RefineConfig | None = None,
                     has_poses: bool = True, log: Callable[[str], None] | None = None,
                     mask_radius_px: float | None = None) -> RefineResult:
    """Refine the poses of ``ps`` against ``reference`` (see the module docstring).

    Parameters
    ----------
    ps : ParticleSet
        Particles; their rotations / shifts are the starting poses when ``has_poses``.
    reference : Tensor
        `(n, n, n)` starting map on the particles' grid (same box and voxel size).
    config : RefineConfig, optional
        Parameters.
    has_poses : bool
        Whether ``ps`` carries meaningful poses (else the global search always runs).
    log : callable, optional
        Receives one progress line per stage.
    """
    cfg = config or RefineConfig()
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    n, pix = ps.box_size_px, ps.pixel_size_angstrom
    ref = torch.as_tensor(reference, dtype=torch.float32)
    if tuple(ref.shape) != (n, n, n):
        raise InputError(f"reference of shape {tuple(ref.shape)}", field="reference",
                         expected=f"({n}, {n}, {n}) like the particles")
    cut = min(0.5, pix / cfg.initial_lowpass_angstrom)
    start = lowpass(ref, cut, soft_width=0.02)
    refs = {1: start, 2: start.clone()}
    rots = ps.rotations.clone()
    shifts_px = ps.shifts_yx_angstrom / pix
    max_shift_px = (0.1 * n if cfg.max_shift_angstrom is None
                    else cfg.max_shift_angstrom / pix)
    radius = min(n / 2 - 1, n * cut + 2)
    do_global = (not has_poses) if cfg.global_search is None else cfg.global_search
    delta = cfg.global_step_deg / 2 if do_global else 2.0
    delta_px = 1.0
    history: list[dict] = []
    best_res, stall = math.inf, 0
    maps = None
    for it in range(cfg.max_iterations + (1 if do_global else 0)):
        mode = "global" if (do_global and it == 0) else "local"
        matchers = {h: SliceMatcher(refs[h], radius) for h in (1, 2)}
        grid = so3_grid(cfg.global_step_deg) if mode == "global" else None
        done = 0
        for rows, imgs in iter_image_batches(ps, cfg.batch_size):
            x = torch.from_numpy(imgs)
            for h, mt in matchers.items():
                m = ps.subset[rows] == h
                if not m.any():
                    continue
                sel = rows[m]
                spec0 = mt.spectra(x[torch.from_numpy(m)])
                ctf = _ctf_for(mt, ps, sel)
                w = _noise_weights(mt, spec0)
                if mode == "global":
                    gi, t_new = _global_search(mt, grid, spec0, ctf, w, shifts_px[sel],
                                               _shift_offsets(n, radius, max_shift_px))
                    rots[sel] = grid[gi]
                    shifts_px[sel] = t_new.clamp(-max_shift_px, max_shift_px)
                else:
                    r_new, t_new = _local_search(mt, rots[sel], shifts_px[sel], spec0, ctf, w,
                                                 delta, delta_px, max_shift_px)
                    rots[sel], shifts_px[sel] = r_new, t_new
            done += len(rows)
        maps = _reconstruct(ps, rots, shifts_px, cfg.batch_size, mask_radius_px)
        res = maps.resolution_angstrom
        s143 = n * pix / res
        history.append({"iteration": it, "mode": mode, "search_radius_shells": radius,
                        "delta_deg": None if mode == "global" else delta,
                        "delta_shift_px": None if mode == "global" else delta_px,
                        "resolution_angstrom": res, "cfar": maps.cfar,
                        "fsc_masked": maps.fsc_masked.tolist(),
                        "seconds": time.perf_counter() - t0})
        say(f"iteration {it} ({mode}): {res:.2f} Å, cFAR {maps.cfar:.2f}, search radius "
            f"{radius:.0f} shells, {time.perf_counter() - t0:.0f} s")
        refs = {1: maps.half1, 2: maps.half2}
        radius = float(min(n / 2 - 1, math.floor(1.2 * s143) + 2))
        if mode == "local":
            delta, delta_px = max(delta / 2, 0.25), max(delta_px / 2, 0.125)
            if res < best_res * 0.99:
                best_res, stall = res, 0
            else:
                stall += 1
                if stall >= 2:
                    break
        else:
            best_res = res
    assert maps is not None
    return RefineResult(rots, shifts_px * pix, maps, history, time.perf_counter() - t0)


def read_particle_set_any(star: str | Path, seed: int = 0) -> tuple[ParticleSet, bool]:
    """:func:`~cryoframe.recon.reconstruct.read_particle_set`, accepting STARs without angles
    (identity poses then); returns the set and whether it carried angles.
    """
    ps = read_particle_set(star, seed=seed, require_angles=False)
    return ps, ps.has_angles


def refine_star(star: str | Path, reference: str | Path, out_dir: str | Path,
                config: RefineConfig | None = None, seed: int = 0,
                log: Callable[[str], None] | None = None) -> RefineResult:
    """Read particles and reference, refine, and write maps, STAR and history into ``out_dir``.

    The written STAR is the input table with RELION angles, ``rlnOriginX/YAngst`` and
    ``rlnRandomSubset`` of the halves used.
    """
    star, reference, out = Path(star), Path(reference), Path(out_dir)
    ps, has_poses = read_particle_set_any(star, seed)
    if not reference.exists():
        raise InputError("reference map not found", file=reference, field="--reference",
                         expected="an MRC map")
    vol = read_mrc(reference)
    data = torch.as_tensor(np.asarray(vol.data, dtype=np.float32))
    n = ps.box_size_px
    if tuple(data.shape) != (n, n, n):
        raise InputError(f"reference box {tuple(data.shape)}", file=reference, field="nx/ny/nz",
                         expected=f"({n}, {n}, {n}), the particles' box")
    if abs(vol.voxel_size_angstrom - ps.pixel_size_angstrom) > 0.01 * ps.pixel_size_angstrom:
        raise InputError(f"voxel size {vol.voxel_size_angstrom:.4g} Å", file=reference,
                         field="voxel size", expected=f"{ps.pixel_size_angstrom:.4g} Å like "
                         "the particles")
    res = refine_particles(ps, data, config, has_poses, log)
    out.mkdir(parents=True, exist_ok=True)
    run = ReconstructionRun(res.maps, len(ps), res.seconds, len(ps) / max(res.seconds, 1e-9))
    write_reconstruction(run, out, {"star": str(star), "reference": str(reference)})
    table = read_particles(star)
    sh = torch.zeros(len(ps), 3, dtype=torch.float64)
    sh[:, 1:] = res.shifts_yx_angstrom.to(torch.float64)
    table.particles = particles_with_poses(table, res.rotations.to(torch.float64), sh)
    table.particles["rlnRandomSubset"] = ps.subset.astype(np.int64)
    write_particles(out / "refined.star", table)
    atomic_write_text(out / "history.json", json.dumps(res.history, indent=2) + "\n")
    return res
