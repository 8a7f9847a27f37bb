"""Refinement: poses recovered from scratch against a low-passed truth; bad references rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoframe._errors import InputError
from cryoframe.geometry.rotations import geodesic_distance_deg
from cryoframe.io.mrc import write_mrc
from cryoframe.recon.reconstruct import read_particle_set, reconstruct_particles
from cryoframe.recon.refine import RefineConfig, refine_particles, refine_star
from cryoframe.simulate.particles2d import (
    centre_density,
    read_density_volume,
    simulate_particle_stack,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("refine")
    vol, vs = read_density_volume("1U6G")
    vol = centre_density(vol)
    star = d / "p.star"
    simulate_particle_stack("1U6G", 400, star, seed=4, box_size_px=vol.shape[0],
                            pixel_size_angstrom=vs, snr=1.0, shift_sigma_angstrom=8.0)
    return d, star, vol, vs


def test_refine_from_scratch_recovers_poses(dataset):
    _, star, vol, _ = dataset
    ps = read_particle_set(star)
    known = reconstruct_particles(ps, 1).result.resolution_angstrom
    true_r = ps.rotations.clone()
    ps.rotations[:] = torch.eye(3)
    ps.shifts_yx_angstrom.zero_()
    res = refine_particles(ps, torch.tensor(vol), RefineConfig(initial_lowpass_angstrom=40,
                                                                 max_iterations=2),
                           has_poses=False)
    err = geodesic_distance_deg(res.rotations, true_r)
    assert float(err.median()) < 12.0
    assert res.maps.resolution_angstrom < 1.2 * known
    assert [h["mode"] for h in res.history][0] == "global"


def test_refine_star_writes_outputs_and_rejects_bad_reference(dataset, tmp_path):
    _, star, vol, vs = dataset
    ref = tmp_path / "ref.mrc"
    write_mrc(ref, vol, vs)
    out = tmp_path / "out"
    res = refine_star(star, ref, out, RefineConfig(max_iterations=1, initial_lowpass_angstrom=40))
    from cryoframe.io.star import read_particles

    df = read_particles(out / "refined.star").particles
    assert set(df["rlnRandomSubset"]) == {1, 2} and "rlnOriginXAngst" in df.columns
    assert (out / "history.json").exists() and res.maps.full.shape == vol.shape
    bad = tmp_path / "bad.mrc"
    write_mrc(bad, vol, vs * 1.5)
    with pytest.raises(InputError, match="voxel size"):
        refine_star(star, bad, tmp_path / "o2")
    write_mrc(bad, np.zeros((16, 16, 16), np.float32), vs)
    with pytest.raises(InputError, match="box"):
        refine_star(star, bad, tmp_path / "o3")


def test_abinitio_seeds_refinement(dataset):
    """Ab initio → refinement from scratch reaches within 25 % of the known-pose resolution."""
    from cryoframe.recon.abinitio import AbinitioConfig, abinitio_particles

    _, star, _, _ = dataset
    ps = read_particle_set(star)
    known = reconstruct_particles(ps, 1).result.resolution_angstrom
    ab = abinitio_particles(ps, AbinitioConfig(subset_size=400, n_rounds=14, seed=1))
    ps.rotations[:] = torch.eye(3)
    ps.shifts_yx_angstrom.zero_()
    res = refine_particles(ps, ab.volume, RefineConfig(initial_lowpass_angstrom=30,
                                                         max_iterations=2), has_poses=False)
    assert res.maps.resolution_angstrom < 1.25 * known


def test_cli_abinitio_and_refine_without_angles(dataset, tmp_path):
    from cryoframe.cli.main import main
    from cryoframe.io.star import read_particles, write_particles

    _, star, _, _ = dataset
    t = read_particles(star)
    t.particles = t.particles.drop(columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"])
    nostar = tmp_path / "noangles.star"
    write_particles(nostar, t)
    import shutil

    shutil.copy(star.with_suffix(".mrcs"), tmp_path / "p.mrcs")
    assert main(["abinitio", str(nostar), "--out", str(tmp_path / "ab"), "--rounds", "3",
                 "--subset-size", "200"]) == 0
    assert main(["refine", str(nostar), "--reference", str(tmp_path / "ab" / "initial_model.mrc"),
                 "--out", str(tmp_path / "rf"), "--max-iterations", "1"]) == 0
    assert (tmp_path / "rf" / "refined.star").exists()
    assert main(["reconstruct", str(nostar), "--out", str(tmp_path / "x")]) == 2
