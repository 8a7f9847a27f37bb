"""RELION-5 / WarpTools tilt-series particles: reconstruction against RELION's map of them."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.fsc import fsc
from cryoframe.recon.halves import soft_sphere
from cryoframe.recon.reconstruct import reconstruct_particles
from cryoframe.recon.tomo import is_tilt_series_star, read_tilt_series_particles

D = Path(__file__).parents[1] / "data" / "particles" / "warptools"
STEM = "warptools_test_4-tomos_10-ptcls_box-32_angpix-12"


def _masked(a, b, mask):
    out = mask < 1e-3
    return fsc(a - a[out].mean(), b - b[out].mean(), mask)[1].numpy()


def test_warptools_matches_relion_reconstruction():
    star = D / f"{STEM}.star"
    assert is_tilt_series_star(star)
    ps = read_tilt_series_particles(star)
    assert len(ps) == 1430 and ps.premultiplied  # 40 particles, visible tilts only
    assert set(np.unique(ps.subset)) == {1, 2}
    run = reconstruct_particles(ps, 1)
    ref = torch.tensor(mrcfile.open(D / "reconstruct_box32_12A.mrc").data.copy())
    mask = soft_sphere(32, 12.0, 4.0)
    c = _masked(run.result.full, ref, mask)
    assert c[1:5].min() > 0.85  # measured 0.99, 0.97, 0.92, 0.89
    assert c[1:9].min() > 0.55  # measured 0.64 (shells 5-8: 0.79, 0.67, 0.64, 0.70)
    # the z mirror of the same map (the convention before the empirical fix) is far worse
    unm = torch.roll(run.result.full.flip(0), 1, 0)
    assert _masked(unm, ref, mask)[3:9].mean() < c[3:9].mean() - 0.2


def test_tilt_series_errors(tmp_path):
    star = D / f"{STEM}.star"
    with pytest.raises(InputError, match="tomograms"):
        read_tilt_series_particles(star, tmp_path / "missing_tomograms.star")
    text = star.read_text().replace("Unt_083/Unt_083_12.00A_000001.mrcs",
                                    "Unt_083/does_not_exist.mrcs")
    bad = tmp_path / f"{STEM}.star"
    bad.write_text(text)
    (tmp_path / f"{STEM}_tomograms.star").write_text(
        (D / f"{STEM}_tomograms.star").read_text())
    with pytest.raises(InputError, match="particle stack not found"):
        read_tilt_series_particles(bad)
