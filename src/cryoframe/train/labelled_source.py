"""Labelled subtomograms made on the fly like the full tilt-series path, for encoder training.

Each batch is a function of ``(seed, step)`` only (a resumed run sees the batches it would have
seen): classes uniform over the bank, uniform SO(3) poses, sub-voxel centre offsets, the fast
path's wedge and WBP transfer (:class:`~cryoframe.simulate.fastpath.FastSubtomogramSimulator`),
a per-tilt ``|CTF|`` with fresh defoci and WBP-coloured noise
(:mod:`cryoframe.simulate.tilt_matched`), combined at a per-sample SNR exactly as SUB5 combines
its signal and noise parts (:func:`cryoframe.simulate.noise.combine_signal_noise`).

Crowding: with ``neighbours_mean > 0`` each box also holds a Poisson number of neighbouring
particles (random classes and poses, their own per-tilt CTF) whose centres lie 17–26 voxels from
the box centre (the minimum separation of CryoEngine's scenes up to a box half-diagonal), shifted
without wrap-around, so their edges intrude as in boxes cut from a crowded tomogram. SUB5 boxes
carry 24 % of their signal energy beyond 12 voxels from the centre against 8.5 % for isolated
particles (measured on 300 boxes each), which is what this imitates. The label is the centre's.

SNR schedule (curriculum): a fraction ``clean_fraction`` of each batch is at SNR 100 (the clean
pool of the classification protocol), the rest log-uniform in ``[snr_low(step), snr_high]`` where
``snr_low`` falls geometrically from ``snr_start`` to ``snr_end`` over ``curriculum_steps``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from cryoframe.geometry.rotations import random_rotations
from cryoframe.simulate.class_bank import ClassBank
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.simulate.tilt_matched import (
    TiltGeometry,
    coloured_noise,
    draw_defocus_angstrom,
    tilt_ctf_magnitude_rfft,
    wbp_noise_psd_rfft,
)
from cryoframe.train.augment3d import standardize

__all__ = ["SNRSchedule", "TiltMatchedSource"]


class SNRSchedule:
    """Per-sample SNRs of a batch (module docstring)."""

    def __init__(self, snr_start: float = 0.1, snr_end: float = 0.005, snr_high: float = 0.5,
                 curriculum_steps: int = 2000, clean_fraction: float = 0.15) -> None:
        self.snr_start, self.snr_end, self.snr_high = snr_start, snr_end, snr_high
        self.curriculum_steps = max(int(curriculum_steps), 1)
        self.clean_fraction = clean_fraction

    def low(self, step: int) -> float:
        """Lowest SNR drawn at ``step``."""
        t = min(step / self.curriculum_steps, 1.0)
        return math.exp(math.log(self.snr_start) + t * (math.log(self.snr_end)
                                                         - math.log(self.snr_start)))

    def draw(self, n: int, step: int, generator: torch.Generator) -> Tensor:
        """`(n,)` SNRs."""
        lo, hi = math.log(self.low(step)), math.log(self.snr_high)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        snr = torch.exp(lo + u * (hi - lo))
        clean = torch.rand(n, generator=generator) < self.clean_fraction
        return torch.where(clean, torch.full_like(snr, 100.0), snr)


class TiltMatchedSource:
    """On-the-fly labelled subtomograms of a :class:`~cryoframe.simulate.class_bank.ClassBank`.

    Parameters
    ----------
    bank : ClassBank
        Class densities (label = index).
    box_px : int
        Subtomogram edge.
    geometry : TiltGeometry
        Tilt range, CTF and voxel size of the imitated full path.
    offset_max_px : float
        Uniform sub-voxel picking error per axis (voxels).
    seed : int
        Data seed.
    neighbours_mean : float
        Mean number of neighbouring particles per box (Poisson); 0 = isolated particles.
    """

    def __init__(self, bank: ClassBank, box_px: int = 32, geometry: TiltGeometry | None = None,
                 offset_max_px: float = 1.0, seed: int = 0, neighbours_mean: float = 0.0) -> None:
        self.neighbours_mean = float(neighbours_mean)
        self.bank = bank
        self.box = int(box_px)
        self.geometry = geometry or TiltGeometry()
        g = self.geometry
        self.sim = FastSubtomogramSimulator(bank.densities, self.box, g.tilt_min_deg,
                                            g.tilt_max_deg, wbp_weighting=True,
                                            voxel_size_angstrom=g.voxel_size_angstrom)
        self.psd = wbp_noise_psd_rfft(self.box, g)
        self.offset_max_px = float(offset_max_px)
        self.seed = int(seed)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.bank)

    def generator(self, step: int, stream: int = 0) -> torch.Generator:
        """The generator of batch ``step`` (independent streams per ``stream``)."""
        s = int(np.random.default_rng([self.seed, int(step), int(stream), 31]).integers(2**62))
        return torch.Generator().manual_seed(s)

    def signal_noise(self, class_ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Signal and unit coloured noise `(n, L, L, L)` for the given classes."""
        n = len(class_ids)
        R = random_rotations(n, generator=generator, dtype=torch.float64).float()
        off = (torch.rand((n, 3), generator=generator) * 2 - 1) * self.offset_max_px
        clean = self.sim.simulate(class_ids.numpy(), R, off)
        L = self.box
        defocus = draw_defocus_angstrom(n, self.geometry, generator)
        ctf = tilt_ctf_magnitude_rfft(L, self.geometry, defocus)
        signal = torch.fft.irfftn(torch.fft.rfftn(clean, dim=(-3, -2, -1)) * ctf,
                                  s=(L, L, L), dim=(-3, -2, -1))
        return signal, coloured_noise(n, self.psd, generator)

    def add_neighbours(self, signal: Tensor, generator: torch.Generator) -> Tensor:
        """``signal`` plus Poisson(``neighbours_mean``) intruding neighbours per box."""
        n = signal.shape[0]
        counts = torch.poisson(torch.full((n,), self.neighbours_mean), generator=generator).long()
        total = int(counts.sum())
        if total == 0:
            return signal
        owner = torch.repeat_interleave(torch.arange(n), counts)
        cls = torch.randint(0, self.n_classes, (total,), generator=generator)
        boxes, _ = self.signal_noise(cls, generator)
        d = torch.randn((total, 3), generator=generator)
        d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-9)
        dist = 17.0 + 9.0 * torch.rand(total, generator=generator)
        shifts = (d * dist[:, None]).round().long()
        L = self.box
        out = signal.clone()
        for j in range(total):
            padded = torch.nn.functional.pad(boxes[j], (L, L) * 3)
            moved = torch.roll(padded, shifts=tuple(shifts[j].tolist()), dims=(0, 1, 2))
            out[owner[j]] += moved[L:2 * L, L:2 * L, L:2 * L]
        return out

    def batch(self, step: int, batch_size: int, schedule: SNRSchedule,
              stream: int = 0) -> dict[str, Tensor]:
        """Standardised noisy volumes `(B, L, L, L)`, labels `(B,)` and SNRs `(B,)`."""
        gen = self.generator(step, stream)
        labels = torch.randint(0, self.n_classes, (batch_size,), generator=gen)
        signal, noise = self.signal_noise(labels, gen)
        if self.neighbours_mean > 0:
            signal = self.add_neighbours(signal, self.generator(step, stream + 1000))
        snr = schedule.draw(batch_size, step, gen)
        vols = combine_signal_noise(signal, noise, snr)  # one SNR per box
        return {"volumes": standardize(vols), "labels": labels, "snr": snr.float()}
