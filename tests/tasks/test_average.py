"""Reference-free iterative averaging with gold-standard half sets."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from cryoframe.baselines.fft_align import AlignResult, FFTAligner, wedge_mask
from cryoframe.data import map_path
from cryoframe.fourier.filters import fourier_crop
from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.geometry.rotations import random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc
from cryoframe.tasks.average import average_subtomograms, weighted_average

N_BOX = 16
PIXEL_A = 20.0  # 10 Å template Fourier-cropped 32 → 16
REG = FFTAligner(step_deg=40.0, refine_steps=4, max_shift_px=4)  # half-map registration


def _map() -> torch.Tensor:
    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    return fourier_crop(d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16], N_BOX)


def _particles(n_part: int, snr: float, seed: int = 0):
    """Randomly rotated and shifted copies with a ±60° wedge and wedge-filtered noise at ``snr``."""
    ref = _map()
    gen = torch.Generator().manual_seed(seed)
    rots = random_rotations(n_part, generator=gen)
    shifts = (torch.rand(n_part, 3, generator=gen) * 2 - 1)
    w = wedge_mask((N_BOX,) * 3)
    h = N_BOX // 2 + 1

    def wf(x):
        return torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * w[..., :h],
                                s=(N_BOX,) * 3, dim=(-3, -2, -1))

    sig = wf(shift_volumes_fourier(rotate_volumes(ref, rots), shifts))
    noise = wf(torch.randn(sig.shape, generator=gen))
    noise = noise / noise.std() * sig.std() / snr**0.5
    return ref, sig + noise, rots, shifts, w


class _OracleAligner:
    """Returns the true poses (looked up by particle content) and records what it was given."""

    def __init__(self, parts, rots, shifts):
        self.table = {self._key(p): (r, t) for p, r, t in zip(parts, rots, shifts)}
        self.calls: list[set] = []

    @staticmethod
    def _key(p):
        return hashlib.sha1(p.contiguous().numpy().tobytes()).hexdigest()

    def align_to_reference(self, particles, reference, particle_mask=None, reference_mask=None):
        keys = [self._key(p) for p in particles]
        self.calls.append(set(keys))
        r = torch.stack([self.table[k][0] if k in self.table else torch.eye(3) for k in keys])
        t = torch.stack([self.table[k][1] if k in self.table else torch.zeros(3) for k in keys])
        return AlignResult(r, t, torch.ones(len(keys)))


def test_weighted_average_with_true_poses_restores_the_map():
    ref, parts, rots, shifts, w = _particles(60, snr=1e6)
    avg, weight = weighted_average(parts, rots, shifts, w, regularisation=0.05)
    freq, curve = fsc(ref, avg)
    assert float(curve[1:6].min()) > 0.9            # up to 0.3 cycles/px
    # random orientations fill the wedge: every low-frequency coefficient is sampled
    assert float(weight[:4, :4, :4].min()) > 5


def test_half_maps_are_independent_and_cover_all_particles():
    ref, parts, rots, shifts, w = _particles(24, snr=0.5)
    oracle = _OracleAligner(parts, rots, shifts)
    res = average_subtomograms(parts, oracle, particle_mask=w, pixel_size_angstrom=PIXEL_A,
                               max_iterations=2, min_iterations=2, seed=1, register_aligner=REG)
    halves = [set(np.flatnonzero(res.half_index == h)) for h in (0, 1)]
    assert halves[0].isdisjoint(halves[1]) and len(halves[0]) + len(halves[1]) == 24
    keys = [oracle._key(p) for p in parts]
    half_keys = [{keys[i] for i in hs} for hs in halves]
    for call in oracle.calls:                   # every alignment call sees one half only
        assert call in half_keys
    # replacing half 2 by pure noise leaves half map 1 exactly unchanged
    parts2 = parts.clone()
    i2 = torch.as_tensor(sorted(halves[1]))
    parts2[i2] = torch.randn(len(i2), N_BOX, N_BOX, N_BOX)
    oracle2 = _OracleAligner(parts2, rots, shifts)
    res2 = average_subtomograms(parts2, oracle2, particle_mask=w, pixel_size_angstrom=PIXEL_A,
                                max_iterations=2, min_iterations=2, seed=1, register_aligner=REG)
    torch.testing.assert_close(res2.half1, res.half1)
    assert (res2.half2 - res.half2).abs().max() > 1e-3


def test_reference_free_averaging_reaches_high_resolution_vs_ground_truth():
    ref, parts, rots, shifts, w = _particles(32, snr=2.0, seed=2)
    aligner = FFTAligner(step_deg=30.0, refine_steps=2, max_shift_px=3)
    res = average_subtomograms(parts, aligner, particle_mask=w, ground_truth=ref,
                               pixel_size_angstrom=PIXEL_A, max_iterations=3, seed=0,
                               register_aligner=REG)
    print(res.history)
    nyquist = 2 * PIXEL_A
    assert len(res.history) >= 3
    assert res.resolution_vs_gt_angstrom < 1.6 * nyquist, res.history
    assert res.resolution_halfmap_angstrom < 1.6 * nyquist
    # the half maps must beat the control averaged at random poses
    assert res.resolution_random_pose_angstrom > res.resolution_halfmap_angstrom
    # control: the same particles averaged without alignment are far worse
    blind, _ = weighted_average(parts, torch.eye(3).expand(32, 3, 3), torch.zeros(32, 3), w)
    freq, curve = fsc(ref, blind)
    assert resolution_at(freq, curve, 0.5, PIXEL_A) > res.resolution_vs_gt_angstrom * 1.5
