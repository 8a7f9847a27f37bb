"""Reference-free iterative subtomogram averaging with gold-standard half sets (000 §3.4, App. G).

Algorithm (:func:`average_subtomograms`)

1. The particles are split at random into two independent half sets; nothing computed from one
   half ever enters the other half's alignment.
2. Initial reference, without a template (``init``):
   ``"average"`` (default) — the plain average of the half set's particles as they are (random
   orientations, so a nearly spherically symmetric blob that fixes size, centre and contrast);
   ``"particle"`` — one randomly drawn particle of the half set. Either is low-passed to
   ``initial_lowpass_cycles_per_px``; the first iterations then break the symmetry.
3. Each iteration aligns every particle of a half to that half's current reference with a
   pluggable aligner (anything with ``align_to_reference(particles, reference, particle_mask)``,
   e.g. :class:`cryoframe.baselines.fft_align.FFTAligner` or the learned aligner of
   :mod:`cryoframe.tasks.align`), then forms the half map by a Fourier-space average with
   missing-wedge-aware weights: each particle is shifted back and rotated into the reference
   frame, its wedge mask rotated with it; the spectra are summed with those masks as weights and
   divided by the summed masks plus a Wiener-like constant
   ``λ = regularisation · mean(Σ masks)``, so frequencies sampled by few particles are damped.
4. The two half maps are registered rigidly (global FFT search; only to share a frame for the
   FSC), their FSC inside a soft spherical mask gives the 0.143 resolution; against a known
   ground truth the registered full map gives the FSC-0.5 resolution.
5. Each half's next reference is its own half map, masked and filtered by the FSC weight
   ``sqrt(2·FSC / (1 + FSC))`` (the FSC curve is shared, the maps are not).
6. Stop when the half-map resolution has not improved by more than ``tol_fraction`` for
   ``patience`` iterations and the mean pose change is below ``converged_deg``, or after
   ``max_iterations``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError
from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.geometry.grids import radial_frequency
from cryoframe.geometry.rotations import geodesic_distance_deg, random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.tasks.fft_align import AlignResult, FFTAligner, rotate_fourier_mask

__all__ = [
    "Aligner",
    "AverageResult",
    "average_subtomograms",
    "weighted_average",
    "soft_sphere_mask",
    "register_maps",
    "fsc_filter",
    "VolumeSource",
    "half_sets",
]

_DIMS = (-3, -2, -1)


class Aligner(Protocol):
    """What :func:`average_subtomograms` needs from an aligner."""

    def align_to_reference(self, particles, reference, particle_mask=None,
                           reference_mask=None) -> AlignResult:
        """Poses ``(R, t)`` with ``particle ≈ shift(rotate(reference, R), t)``."""
        ...


@dataclass
class AverageResult:
    """Output of :func:`average_subtomograms` (maps in half 1's frame)."""

    map: Tensor                      #: `(n, n, n)` average of all particles
    half1: Tensor                    #: `(n, n, n)` half map 1
    half2: Tensor                    #: `(n, n, n)` half map 2, registered onto half 1
    rotations: Tensor                #: `(N, 3, 3)` poses in the frame of ``map``
    shifts_zyx_px: Tensor            #: `(N, 3)` shifts in voxels
    half_index: np.ndarray           #: `(N,)` 0 or 1
    fsc_freq: Tensor                 #: `(n//2+1,)` cycles/px
    fsc_half: Tensor                 #: `(n//2+1,)` masked half-map FSC (last iteration)
    fsc_gt: Tensor | None            #: FSC of ``map`` against the ground truth, if given
    resolution_halfmap_angstrom: float
    resolution_vs_gt_angstrom: float | None
    history: list[dict] = field(default_factory=list)  #: per-iteration figures
    wall_s: float = 0.0
    #: half-map FSC-0.143 resolution of the same particles averaged at random poses (control:
    #: both halves then share the rotational average, which alone gives a "resolution")
    resolution_random_pose_angstrom: float | None = None
    #: `(n//2+1,)` half-map FSC of that random-pose control (on ``fsc_freq``)
    fsc_random_pose: Tensor | None = None
    #: `(n, n, n)` ``map`` registered onto the ground truth (for side-by-side slices), if given
    map_registered_to_gt: Tensor | None = None


def soft_sphere_mask(n: int, radius_px: float, soft_px: float = 3.0) -> Tensor:
    """`(n, n, n)` spherical mask about voxel ``n // 2`` with a raised-cosine edge."""
    ax = torch.arange(n, dtype=torch.float32) - n // 2
    r = torch.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    t = ((r - radius_px) / max(soft_px, 1e-6)).clamp(0, 1)
    return 0.5 * (1 + torch.cos(math.pi * t))


def weighted_average(
    particles: Tensor,
    rotations: Tensor,
    shifts_zyx_px: Tensor,
    particle_mask: Tensor | None = None,
    regularisation: float = 0.1,
    order: str = "linear",
    chunk: int = 128,
) -> tuple[Tensor, Tensor]:
    """Wedge-weighted Fourier average of particles brought into the reference frame.

    Parameters
    ----------
    particles : Tensor
        `(N, n, n, n)` subtomograms with poses ``particle ≈ shift(rotate(ref, R), t)``.
    rotations : Tensor
        `(N, 3, 3)` poses ``R``.
    shifts_zyx_px : Tensor
        `(N, 3)` shifts ``t`` in voxels.
    particle_mask : Tensor, optional
        `(n, n, n)` full-spectrum Fourier mask (fftfreq order) sampled by every particle in its
        own frame (the missing wedge); ``None``: full sampling.
    regularisation : float
        Wiener-like constant as a fraction of the mean summed weight.
    order : {"linear", "cubic"}
        Interpolation of the real-space rotation.
    chunk : int
        Particles processed at once.

    Returns
    -------
    average : Tensor
        `(n, n, n)` map.
    weight : Tensor
        `(n, n, n//2+1)` summed rotated masks (the number of particles sampling each
        coefficient).
    """
    acc = _Accumulator(particles.shape[-1], particle_mask, order)
    for s0 in range(0, particles.shape[0], chunk):
        acc.add(particles[s0:s0 + chunk], rotations[s0:s0 + chunk],
                shifts_zyx_px[s0:s0 + chunk])
    return acc.result(regularisation)


class _Accumulator:
    """Running numerator/denominator of :func:`weighted_average` (particles in chunks)."""

    def __init__(self, n: int, particle_mask: Tensor | None, order: str = "linear") -> None:
        self.n, self.mask, self.order = n, particle_mask, order
        self.num = torch.zeros(n, n, n // 2 + 1, dtype=torch.complex64)
        self.den = torch.zeros(n, n, n // 2 + 1)

    def add(self, particles: Tensor, rotations: Tensor, shifts_zyx_px: Tensor) -> None:
        p = particles.to(torch.float32)
        rt = rotations.transpose(-1, -2)
        x = rotate_volumes(shift_volumes_fourier(p, -shifts_zyx_px), rt, order=self.order)
        xf = torch.fft.rfftn(x, dim=_DIMS)
        if self.mask is None:
            self.num += xf.sum(0)
            self.den += xf.shape[0]
        else:
            w = rotate_fourier_mask(self.mask, rt)
            self.num += (xf * w).sum(0)
            self.den += w.sum(0)

    def result(self, regularisation: float) -> tuple[Tensor, Tensor]:
        n = self.n
        lam = regularisation * self.den.mean().clamp_min(1e-6)
        avg = torch.fft.irfftn(self.num / (self.den + lam), s=(n, n, n), dim=_DIMS)
        return avg, self.den


class VolumeSource:
    """Particles read in chunks: an in-memory `(N, n, n, n)` array, a ``numpy.memmap``, or any
    object with ``__len__`` and ``get(indices) -> {"clean": Tensor}`` (a CryoEngine store's
    :class:`~cryoframe.train.subtomo_data.StoreSource`), so a large store is averaged without
    being loaded.
    """

    def __init__(self, particles) -> None:
        self._get = None
        if hasattr(particles, "get") and hasattr(particles, "__len__") and \
                not isinstance(particles, (Tensor, np.ndarray)):
            self._get = particles.get
            first = self._get(np.arange(1))["clean"]
            self.n_part, self.box = len(particles), int(first.shape[-1])
            self._data = None
            shape = (self.n_part, *first.shape[1:])
        else:
            data = particles if isinstance(particles, Tensor) else np.asarray(particles) \
                if not isinstance(particles, np.memmap) else particles
            self._data = data
            shape = tuple(data.shape)
            self.n_part = shape[0] if len(shape) else 0
            self.box = int(shape[-1]) if len(shape) else 0
        if len(shape) != 4 or len(set(shape[1:])) != 1 or shape[0] < 4:
            raise InputError(f"particles of shape {shape}", field="particles",
                             expected="(N, n, n, n) with N >= 4")

    def __len__(self) -> int:
        return self.n_part

    def read(self, indices) -> Tensor:
        """`(len(indices), n, n, n)` float32 particles."""
        idx = np.asarray(indices, dtype=np.int64)
        if self._get is not None:
            return torch.as_tensor(self._get(idx)["clean"], dtype=torch.float32)
        if isinstance(self._data, Tensor):
            return self._data[torch.as_tensor(idx)].to(torch.float32)
        return torch.as_tensor(np.asarray(self._data[idx], dtype=np.float32))

    def chunks(self, indices, size: int):
        """Yield ``(positions, particles)`` over ``indices`` in chunks of ``size``."""
        idx = np.asarray(indices, dtype=np.int64)
        for s0 in range(0, len(idx), size):
            pos = np.arange(s0, min(s0 + size, len(idx)))
            yield pos, self.read(idx[pos])


def fsc_filter(volume: Tensor, freq: Tensor, curve: Tensor) -> Tensor:
    """Filter a map by the FSC weight ``sqrt(2 FSC / (1 + FSC))`` per shell (0 where FSC ≤ 0)."""
    n = volume.shape[-1]
    f = torch.as_tensor(curve, dtype=torch.float32).clamp(0, 1)
    w = torch.sqrt(2 * f / (1 + f))
    w[0] = 1.0
    shells = torch.round(radial_frequency((n, n, n), rfft=True) * n).long()
    filt = torch.where(shells < len(w), w[shells.clamp_max(len(w) - 1)], torch.zeros(()))
    return torch.fft.irfftn(torch.fft.rfftn(volume, dim=_DIMS) * filt, s=(n, n, n), dim=_DIMS)


def _lowpass(volume: Tensor, cutoff_cycles_per_px: float) -> Tensor:
    """Gaussian low-pass with amplitude 0.5 at ``cutoff``."""
    n = volume.shape[-1]
    k = radial_frequency((n, n, n), rfft=True)
    filt = torch.exp(-math.log(2) * (k / cutoff_cycles_per_px) ** 2)
    return torch.fft.irfftn(torch.fft.rfftn(volume, dim=_DIMS) * filt, s=(n, n, n), dim=_DIMS)


def register_maps(moving: Tensor, fixed: Tensor, aligner: FFTAligner | None = None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Rigidly register ``moving`` onto ``fixed`` (global FFT search).

    Returns
    -------
    registered : Tensor
        `(n, n, n)` ``moving`` brought into the frame of ``fixed``.
    rotation, shift_zyx_px : Tensor
        `(3, 3)` and `(3,)`: ``moving ≈ shift(rotate(fixed, R), t)``.
    """
    aligner = aligner or FFTAligner(step_deg=30.0, refine_steps=5,
                                    max_shift_px=moving.shape[-1] / 4)
    res = aligner.align_to_reference(moving[None], fixed)
    rot, t = res.rotations[0], res.shifts_zyx_px[0]
    reg = rotate_volumes(shift_volumes_fourier(moving, -t), rot.T, order="cubic")
    return reg, rot, t


def _initial_reference(src: "VolumeSource", rows, init: str, gen: torch.Generator,
                       cutoff: float, chunk: int) -> Tensor:
    rows = np.asarray(rows)
    if init == "average":
        ref = torch.zeros(src.box, src.box, src.box, dtype=torch.float64)
        for _, p in src.chunks(rows, chunk):
            ref += p.double().sum(0)
        ref = (ref / len(rows)).to(torch.float32)
    elif init == "particle":
        ref = src.read(rows[[int(torch.randint(len(rows), (1,), generator=gen))]])[0]
    else:
        raise InputError(f"unknown initial reference '{init}'", field="init",
                         expected="'average' or 'particle'")
    return _lowpass(ref, cutoff)


def _save_checkpoint(path, state: dict) -> None:

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path, fingerprint: list) -> dict | None:
    """The saved state if ``path`` exists and was made from the same inputs, else ``None``."""
    import pickle
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"unreadable averaging checkpoint ({exc})", file=p,
                         expected="a checkpoint written by cryoframe average, or --restart")
    if state.get("fingerprint") != fingerprint:
        return None
    return state


def half_sets(n_part: int, generator: torch.Generator) -> tuple[np.ndarray, list[Tensor]]:
    """Random gold-standard split: `(N,)` half index (0 or 1) and each half's sorted rows.

    ``average_subtomograms`` draws it first from a generator seeded with its ``seed``.
    """
    perm = torch.randperm(n_part, generator=generator)
    half_index = np.zeros(n_part, dtype=int)
    half_index[perm[n_part // 2:].numpy()] = 1
    return half_index, [torch.as_tensor(np.flatnonzero(half_index == h)) for h in (0, 1)]


def average_subtomograms(
    particles,
    aligner: Aligner,
    *,
    particle_mask: Tensor | None = None,
    pixel_size_angstrom: float = 10.0,
    ground_truth=None,
    max_iterations: int = 10,
    min_iterations: int = 3,
    init: str = "average",
    initial_lowpass_cycles_per_px: float = 0.1,
    regularisation: float = 0.1,
    mask_radius_fraction: float = 0.4,
    tol_fraction: float = 0.01,
    patience: int = 2,
    converged_deg: float = 5.0,
    seed: int = 0,
    register_aligner: FFTAligner | None = None,
    random_pose_control: bool = True,
    progress=None,
    checkpoint=None,
    resume: bool = True,
    chunk: int = 256,
) -> AverageResult:
    """Reference-free iterative averaging with independent half sets (see module docstring).

    Parameters
    ----------
    particles : array, Tensor, memmap or store source
        `(N, n, n, n)` subtomograms, N ≥ 4; read ``chunk`` at a time (:class:`VolumeSource`),
        so memory does not grow with N beyond the per-particle poses.
    aligner : Aligner
        Pose search against a reference.
    particle_mask : Tensor, optional
        `(n, n, n)` full-spectrum Fourier mask (fftfreq order) of the wedge every particle
        samples in its own (microscope) frame.
    pixel_size_angstrom : float
        Voxel size, Å.
    ground_truth : array or Tensor, optional
        `(n, n, n)` true map (same contrast) for the FSC-0.5 resolution.
    max_iterations, min_iterations, tol_fraction, patience, converged_deg
        Stopping rule.
    init : {"average", "particle"}
        Initial reference of each half (no template).
    initial_lowpass_cycles_per_px : float
        Low-pass of the initial reference.
    regularisation : float
        Wiener-like constant of :func:`weighted_average`.
    mask_radius_fraction : float
        Radius of the soft spherical mask (reference and FSC) as a fraction of the box.
    seed : int
        Seed of the half split and of ``init="particle"``.
    register_aligner : FFTAligner, optional
        Aligner of the rigid half-map (and ground-truth) registration; default a global search
        at 30° with 5 refinement steps.
    random_pose_control : bool
        Also report the half-map resolution of the same halves averaged at random poses: the
        rotational average is shared by both halves, so a half-map FSC is only meaningful
        where it beats this control.
    progress : callable, optional
        Called with each iteration's history entry.
    checkpoint : str or Path, optional
        File written atomically after every iteration (poses, references, maps, history). A
        run killed at any point and started again with the same particles and settings
        continues from the last finished iteration and gives the same result as an
        uninterrupted run.
    resume : bool
        Use an existing ``checkpoint`` (a checkpoint of other data or settings is ignored).
    chunk : int
        Particles aligned and averaged at once.

    Returns
    -------
    AverageResult
    """
    t_start = time.perf_counter()
    src = particles if isinstance(particles, VolumeSource) else VolumeSource(particles)
    n_part, n = len(src), src.box
    gt = None if ground_truth is None else torch.as_tensor(np.asarray(ground_truth),
                                                           dtype=torch.float32)
    if gt is not None and gt.shape != (n, n, n):
        raise InputError(f"ground truth of shape {tuple(gt.shape)}", field="ground_truth",
                         expected=f"({n}, {n}, {n})")
    gen = torch.Generator().manual_seed(seed)
    half_index, idx = half_sets(n_part, gen)
    sphere = soft_sphere_mask(n, mask_radius_fraction * n)
    refs = [_initial_reference(src, i.numpy(), init, gen, initial_lowpass_cycles_per_px,
                               chunk) * sphere for i in idx]
    rots = torch.eye(3).repeat(n_part, 1, 1)
    shifts = torch.zeros(n_part, 3)
    history: list[dict] = []
    best_res, stale = math.inf, 0
    maps: list[Tensor] = []
    freq = curve = None
    s1 = s2 = 0.0
    for _, p in src.chunks(np.arange(n_part), chunk):
        s1, s2 = s1 + float(p.double().sum()), s2 + float((p.double() ** 2).sum())
    fingerprint = [n_part, n, seed, init, max_iterations, min_iterations, regularisation, s1, s2,
                   None if particle_mask is None else float(torch.as_tensor(particle_mask).sum()),
                   type(aligner).__name__, getattr(aligner, "step_deg", None),
                   None if gt is None else float(gt.double().sum())]
    first_it, stopped = 1, False
    state = _load_checkpoint(checkpoint, fingerprint) if (checkpoint and resume) else None
    if state is not None:
        rots, shifts, refs = state["rots"], state["shifts"], list(state["refs"])
        history, best_res, stale = list(state["history"]), state["best_res"], state["stale"]
        maps, reg2, rh, th = list(state["maps"]), state["reg2"], state["rh"], state["th"]
        freq, curve = state["freq"], state["curve"]
        first_it, stopped = state["iteration"] + 1, state["stopped"]
    for it in range(first_it, max_iterations + 1):
        if stopped:
            break
        t_it = time.perf_counter()
        new_rots, maps = rots.clone(), []
        for h in (0, 1):
            acc = _Accumulator(n, particle_mask)
            rows = idx[h].numpy()
            for pos, p in src.chunks(rows, chunk):
                res = aligner.align_to_reference(p, refs[h], particle_mask=particle_mask)
                new_rots[rows[pos]] = res.rotations
                shifts[rows[pos]] = res.shifts_zyx_px
                acc.add(p, res.rotations, res.shifts_zyx_px)
            maps.append(acc.result(regularisation)[0])
        change = float(geodesic_distance_deg(new_rots, rots).mean()) if it > 1 else float("nan")
        rots = new_rots
        reg2, rh, th = register_maps(maps[1], maps[0], register_aligner)
        freq, curve = fsc(maps[0], reg2, mask=sphere)
        res_half = resolution_at(freq, curve, 0.143, pixel_size_angstrom)
        entry = {"iteration": it, "res_halfmap_angstrom": res_half, "mean_pose_change_deg": change,
                 "seconds": time.perf_counter() - t_it}
        if gt is not None:
            reg_gt, _, _ = register_maps(0.5 * (maps[0] + reg2), gt, register_aligner)
            entry["res_vs_gt_angstrom"] = resolution_at(
                freq, fsc(gt, reg_gt, mask=sphere)[1], 0.5, pixel_size_angstrom)
        history.append(entry)
        if progress is not None:
            progress(entry)
        curve_f = curve.to(torch.float32)
        refs = [fsc_filter(maps[h] * sphere, freq, curve_f) * sphere for h in (0, 1)]
        improved = res_half < best_res * (1 - tol_fraction)
        best_res = min(best_res, res_half)
        stale = 0 if improved else stale + 1
        stopped = it >= min_iterations and stale >= patience and (math.isnan(change)
                                                                  or change < converged_deg)
        if checkpoint:
            _save_checkpoint(checkpoint, {
                "fingerprint": fingerprint, "iteration": it, "stopped": stopped, "rots": rots,
                "shifts": shifts, "refs": refs, "history": history, "best_res": best_res,
                "stale": stale, "maps": maps, "reg2": reg2, "rh": rh, "th": th, "freq": freq,
                "curve": curve})
        if stopped:
            break
    # poses of half 2 expressed in half 1's frame: R_i Rh, R_i th + t_i
    i2 = idx[1]
    shifts[i2] = shifts[i2] + torch.einsum("bij,j->bi", rots[i2], th)
    rots[i2] = rots[i2] @ rh
    acc = _Accumulator(n, particle_mask)
    for pos, p in src.chunks(np.arange(n_part), chunk):
        acc.add(p, rots[pos], shifts[pos])
    full_map, _ = acc.result(regularisation)
    fsc_gt, res_gt, reg_full = None, None, None
    if gt is not None:
        reg_full, _, _ = register_maps(full_map, gt, register_aligner)
        _, fsc_gt = fsc(gt, reg_full, mask=sphere)
        res_gt = resolution_at(freq, fsc_gt, 0.5, pixel_size_angstrom)
        history[-1]["res_vs_gt_angstrom"] = res_gt
    res_random, fsc_random = None, None
    if random_pose_control:

        rand = random_rotations(n_part, generator=torch.Generator().manual_seed(seed + 1))
        ctrl = []
        for i in idx:
            acc = _Accumulator(n, particle_mask)
            rows = i.numpy()
            for pos, p in src.chunks(rows, chunk):
                acc.add(p, rand[rows[pos]], torch.zeros(len(pos), 3))
            ctrl.append(acc.result(regularisation)[0])
        c2, _, _ = register_maps(ctrl[1], ctrl[0], register_aligner)
        _, fsc_random = fsc(ctrl[0], c2, mask=sphere)
        res_random = resolution_at(freq, fsc_random, 0.143, pixel_size_angstrom)
    return AverageResult(
        resolution_random_pose_angstrom=res_random, fsc_random_pose=fsc_random,
        map_registered_to_gt=reg_full,
        map=full_map, half1=maps[0], half2=reg2, rotations=rots, shifts_zyx_px=shifts,
        half_index=half_index, fsc_freq=freq, fsc_half=curve, fsc_gt=fsc_gt,
        resolution_halfmap_angstrom=float(resolution_at(freq, curve, 0.143, pixel_size_angstrom)),
        resolution_vs_gt_angstrom=res_gt, history=history,
        wall_s=time.perf_counter() - t_start,
    )
