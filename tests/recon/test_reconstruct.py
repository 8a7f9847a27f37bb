"""Reconstruction round trips: project → insert → FSC against the truth; STAR/CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.fsc import fsc
from cryoframe.geometry.rotations import random_rotations
from cryoframe.recon.insertion import FourierAccumulator, wiener_volume
from cryoframe.recon.reconstruct import read_particle_set, reconstruct_star
from cryoframe.simulate.particles2d import (
    centre_density,
    project_volume,
    read_density_volume,
    simulate_particle_stack,
)


@pytest.fixture(scope="module")
def truth():
    vol, vs = read_density_volume("1BXN")
    return centre_density(vol), vs


@pytest.mark.parametrize("pad", [1, 2])
def test_noise_free_insertion_recovers_volume(truth, pad):
    vol, vs = truth
    n = vol.shape[0]
    rots = random_rotations(300, generator=torch.Generator().manual_seed(1))
    imgs = project_volume(vol, rots, vs)
    acc = FourierAccumulator(n, pad)
    acc.insert(acc.image_spectra(imgs), rots)
    v = wiener_volume(acc, 1e-3)
    _, c = fsc(v, torch.tensor(vol))
    assert c[1: n // 2 - 2].min() > 0.97  # all shells but the last two
    # projections are line integrals (density × Å): the map is density × voxel size
    scale = float((v * torch.tensor(vol)).sum() / (torch.tensor(vol) ** 2).sum())
    assert scale == pytest.approx(vs, rel=0.05)


def test_transposed_rotations_fail(truth):
    """The known answer must depend on the convention: Rᵀ instead of R breaks it."""
    vol, vs = truth
    n = vol.shape[0]
    rots = random_rotations(200, generator=torch.Generator().manual_seed(2))
    imgs = project_volume(vol, rots, vs)
    acc = FourierAccumulator(n, 1)
    acc.insert(acc.image_spectra(imgs), rots.transpose(1, 2))
    _, c = fsc(wiener_volume(acc, 1e-3), torch.tensor(vol))
    assert c[6:20].mean() < 0.7


def test_star_round_trip_with_ctf_shifts_astigmatism(tmp_path, truth):
    vol, vs = truth
    star = tmp_path / "p.star"
    simulate_particle_stack("1BXN", 600, star, seed=3, box_size_px=vol.shape[0],
                            pixel_size_angstrom=vs, snr=1.0, shift_sigma_angstrom=15.0,
                            astigmatism_max_angstrom=800.0)
    ps = read_particle_set(star)
    assert ps.ctf is not None and float(ps.shifts_yx_angstrom.abs().max()) > 5
    run = reconstruct_star(star, tmp_path / "out", pad=1)
    _, c = fsc(run.result.full, torch.tensor(vol))
    assert c[1:13].min() > 0.8
    assert run.result.resolution_angstrom < 35.0
    for name in ("half1.mrc", "half2.mrc", "map.mrc", "fsc.json", "fsc.png"):
        assert (tmp_path / "out" / name).exists()
    summary = json.loads((tmp_path / "out" / "fsc.json").read_text())
    assert summary["n_particles"] == 600 and 0 <= summary["cfar"] <= 1
    # the same data with the shifts ignored must be worse
    from cryoframe.recon.reconstruct import reconstruct_particles

    ps.shifts_yx_angstrom.zero_()
    bad = reconstruct_particles(ps, 1)
    _, c_bad = fsc(bad.result.full, torch.tensor(vol))
    assert c_bad[8:13].mean() < c[8:13].mean() - 0.1


def test_written_star_has_phase_shift(tmp_path):
    star = tmp_path / "p.star"
    simulate_particle_stack("1BXN", 4, star, seed=0, box_size_px=32)
    from cryoframe.io.star import read_particles

    df = read_particles(star).particles
    assert "rlnPhaseShift" in df.columns and np.all(df["rlnPhaseShift"] == 0)


def test_random_subset_respected_and_bad_inputs(tmp_path):
    star = tmp_path / "p.star"
    simulate_particle_stack("1BXN", 20, star, seed=0, box_size_px=32)
    from cryoframe.io.star import read_particles, write_particles

    t = read_particles(star)
    t.particles["rlnRandomSubset"] = [1, 2] * 10
    write_particles(star, t)
    ps = read_particle_set(star)
    assert list(ps.subset[:4]) == [1, 2, 1, 2]
    t.particles["rlnRandomSubset"] = 3
    write_particles(star, t)
    with pytest.raises(InputError, match="rlnRandomSubset"):
        read_particle_set(star)
    t.particles = t.particles.drop(columns=["rlnRandomSubset", "rlnAngleRot"])
    write_particles(star, t)
    with pytest.raises(InputError, match="rlnAngleRot"):
        read_particle_set(star)


def test_cli_errors_one_line_exit_2(tmp_path, capsys):
    from cryoframe.cli.main import main

    star = tmp_path / "p.star"
    simulate_particle_stack("1BXN", 6, star, seed=0, box_size_px=32)
    (tmp_path / "p.mrcs").unlink()
    out = tmp_path / "out"
    assert main(["reconstruct", str(star), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "particle stack not found" in err and "rlnImageName" in err
    assert not out.exists()
    assert main(["reconstruct", str(tmp_path / "missing.star"), "--out", str(out)]) == 2
    # wrong image size: stack of 32-px images, STAR says 48
    simulate_particle_stack("1BXN", 6, star, seed=0, box_size_px=32)
    from cryoframe.io.star import read_particles, write_particles

    t = read_particles(star)
    t.particles["rlnImageSize"] = 48
    write_particles(star, t)
    assert main(["reconstruct", str(star), "--out", str(out)]) == 2
    assert "rlnImageSize" in capsys.readouterr().err and not out.exists()


def test_cli_reconstruct_runs(tmp_path):
    from cryoframe.cli.main import main

    star = tmp_path / "p.star"
    assert main(["particles", "simulate", "1BXN", "--out", str(star), "--n", "64", "--box",
                 "32", "--shift-sigma-angstrom", "10", "--astigmatism-max-angstrom", "300"]) == 0
    df = pd.DataFrame(read_particle_set(star).shifts_yx_angstrom.numpy())
    assert float(df.abs().max().max()) > 1.0
    assert main(["reconstruct", str(star), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "map.mrc").exists()
