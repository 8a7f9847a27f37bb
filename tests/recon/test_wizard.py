"""CryoWizard: the choice rules and an end-to-end run on a tiny stack."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryoframe.recon.wizard import Candidate, _choose


class _Maps:
    def __init__(self, res, cfar):
        self.resolution_angstrom, self.cfar = res, cfar


class _Res:
    def __init__(self, res, cfar):
        self.maps = _Maps(res, cfar)


def _c(name, res, cfar):
    return Candidate("s", name, np.arange(10), _Res(res, cfar))


def test_choice_prefers_best_resolution_among_isotropic():
    best, why = _choose([_c("a", 8.0, 0.1), _c("b", 10.0, 0.5), _c("c", 9.0, 0.3)], 0.15)
    assert best.name == "c" and "cFAR > 0.15" in why
    best, why = _choose([_c("a", 8.0, 0.1), _c("b", 10.0, 0.12)], 0.15)
    assert best.name == "b" and "most isotropic" in why


@pytest.mark.slow
def test_wizard_end_to_end(tmp_path):
    from cryoframe.cli.main import main
    from cryoframe.simulate.particles2d import simulate_particle_stack

    star = tmp_path / "p.star"
    simulate_particle_stack("1U6G", 240, star, seed=0, box_size_px=54, pixel_size_angstrom=10.0,
                            snr=1.0)
    out = tmp_path / "wz"
    assert main(["wizard", str(star), "--out", str(out), "--parts", "2", "--refine-iterations",
                 "1", "--abinitio-subset", "120", "--stage2-fractions", "0.5"]) == 0
    for f in ("report.html", "map.mrc", "refined.star", "scores.npy", "features.npy",
              "candidates.json", "angular_distribution.png", "fsc_candidates.png",
              "central_slices.png"):
        assert (out / f).exists(), f
    cj = json.loads((out / "candidates.json").read_text())
    assert len(cj["candidates"]) >= 3 and cj["final"]
