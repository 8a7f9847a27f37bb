"""Junk generator: graded scores per kind, noise level of good particles, determinism."""

from __future__ import annotations

import torch

from cryoframe.simulate.junk2d import JUNK_KINDS, KINDS, simulate_junk_set
from cryoframe.simulate.particles2d import ParticleSimConfig


def test_scores_and_kinds(small_density):
    vol, vs = small_density
    js = simulate_junk_set(vol, vs, 12, generator=torch.Generator().manual_seed(0))
    assert js.images.shape == (12 * len(KINDS), 64, 64)
    assert torch.isfinite(js.images).all()
    assert js.scores.min() >= 0 and js.scores.max() <= 1
    by = {k: js.scores[js.kinds == i] for i, k in enumerate(KINDS)}
    assert (by["good"] == 1).all() and (by["empty_ice"] == 0).all()
    assert by["carbon_edge"].max() <= 0.3 and by["contamination"].max() <= 0.5
    for graded in ("overlap", "off_centre", "blur"):  # cross the α thresholds
        assert by[graded].std() > 0.05
    assert set(JUNK_KINDS) | {"good"} == set(KINDS)


def test_noise_level_shared_and_deterministic(small_density):
    vol, vs = small_density
    cfg = ParticleSimConfig(snr=0.1)
    a = simulate_junk_set(vol, vs, 6, cfg, torch.Generator().manual_seed(5))
    b = simulate_junk_set(vol, vs, 6, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a.images, b.images)
    # empty ice is mostly noise: its variance is close to the noise variance of good particles
    good = a.images[a.kinds == 0].var(dim=(-2, -1)).mean()
    ice = a.images[a.kinds == 1].var(dim=(-2, -1)).mean()
    assert 0.7 < float(ice / good) < 1.05


def test_off_centre_moves_signal_out(small_density):
    vol, vs = small_density
    cfg = ParticleSimConfig(snr=None)
    js = simulate_junk_set(vol, vs, 8, cfg, torch.Generator().manual_seed(1),
                           kinds=("good", "off_centre"))
    centre = js.images[:, 24:40, 24:40].abs().mean(dim=(-2, -1))
    assert centre[js.kinds == 0].mean() > 2 * centre[js.kinds == KINDS.index("off_centre")].mean()
