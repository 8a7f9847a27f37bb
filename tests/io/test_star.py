"""STAR files: round trip of every fixture, optics merge/split, units, poses, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cryoframe import InputError
from cryoframe.geometry.euler import relion_euler_to_matrix
from cryoframe.io.star import (
    particles_with_poses,
    pixel_size_angstrom,
    poses_from_particles,
    read_particles,
    read_star,
    read_tomograms,
    write_particles,
    write_star,
)

STAR_FIXTURES = [
    "starfile/default_pipeline.star",
    "starfile/one_loop.star",
    "starfile/postprocess.star",
    "starfile/relion_tutorial/run_it025_optimiser_2D.star",
    "starfile/relion_tutorial/run_it025_optimiser_3D.star",
    "starfile/relion_tutorial/run_it025_sampling_2D.star",
    "starfile/relion_tutorial/run_it025_sampling_3D.star",
    "starfile/rln3.1_data_style.star",
    "starfile/two_basic_blocks.star",
    "cryodrgn/relion31.6opticsgroups.star",
    "cryodrgn/relion5.star",
    "tomo_pytom/relion5_project_example/Tomograms/job009/tilt_series/tomo200528_107.star",
    "tomo_pytom/relion5_project_example/Tomograms/job009/tomograms.star",
    "particles/relion31/relion31.star",
    "particles/relion31/relion31.v2.star",
    "particles/empiar_10076_7/empiar_10076_7.star",
    "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star",
    "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12_optimisation_set.star",
    "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12_tomograms.star",
]
PARTICLE_FIXTURES = [
    "cryodrgn/relion31.6opticsgroups.star",
    "cryodrgn/relion5.star",
    "particles/relion31/relion31.star",
    "particles/relion31/relion31.v2.star",
    "particles/empiar_10076_7/empiar_10076_7.star",
    "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star",
]
WARP = "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12"


def _assert_blocks_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        if isinstance(a[name], pd.DataFrame):
            pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
        else:
            assert a[name] == b[name], name


def test_all_star_fixtures_are_listed(data_dir):
    found = {str(p.relative_to(data_dir)) for p in data_dir.rglob("*.star")}
    assert found == set(STAR_FIXTURES)


@pytest.mark.parametrize("rel", STAR_FIXTURES)
def test_star_roundtrip_same_values(data_dir, tmp_path, rel):
    blocks = read_star(data_dir / rel)
    out = write_star(tmp_path / "out.star", blocks)
    _assert_blocks_equal(blocks, read_star(out))


@pytest.mark.parametrize("rel", PARTICLE_FIXTURES)
def test_particles_roundtrip_splits_optics_back(data_dir, tmp_path, rel):
    table = read_particles(data_dir / rel)
    out = write_particles(tmp_path / "p.star", table)
    # the written file has the same blocks, in the same order, with the same values
    _assert_blocks_equal(read_star(data_dir / rel), read_star(out))
    again = read_particles(out)
    pd.testing.assert_frame_equal(table.particles, again.particles, check_exact=True)


def test_optics_merged_per_particle(data_dir):
    t = read_particles(data_dir / "cryodrgn/relion31.6opticsgroups.star")
    assert t.version == "3.1+" and len(t) == 139
    optics = t.optics.set_index("rlnOpticsGroup")
    for col in ("rlnImagePixelSize", "rlnVoltage", "rlnSphericalAberration"):
        expect = optics.loc[t.particles["rlnOpticsGroup"], col].to_numpy()
        assert np.array_equal(t.particles[col].to_numpy(), expect)
    assert t.particles["rlnOpticsGroup"].nunique() == 6


def test_pixel_size_from_magnification_relion30(data_dir):
    t = read_particles(data_dir / "particles/empiar_10076_7/empiar_10076_7.star")
    assert t.version == "3.0"
    # 5 µm detector pixel at 38168× magnification = 1.31 Å
    assert np.allclose(pixel_size_angstrom(t), 5e4 / 38168)
    assert pixel_size_angstrom(t)[0] == pytest.approx(1.31, abs=1e-3)


def test_poses_match_relion_columns(data_dir):
    t = read_particles(data_dir / "particles/relion31/relion31.star")
    rot, shifts = poses_from_particles(t)
    df = t.particles
    expect = relion_euler_to_matrix(df["rlnAngleRot"].to_numpy(copy=True),
                                    df["rlnAngleTilt"].to_numpy(copy=True),
                                    df["rlnAnglePsi"].to_numpy(copy=True))
    assert torch.allclose(rot, expect.double())
    # shift = particle centre − box centre = −rlnOrigin, zyx, z = 0 for 2D particles
    assert np.allclose(shifts[:, 2].numpy(), -df["rlnOriginXAngst"].to_numpy())
    assert np.allclose(shifts[:, 1].numpy(), -df["rlnOriginYAngst"].to_numpy())
    assert torch.all(shifts[:, 0] == 0)


def test_pixel_origins_converted_to_angstrom():
    df = pd.DataFrame({"rlnAngleRot": [10.0], "rlnAngleTilt": [20.0], "rlnAnglePsi": [30.0],
                       "rlnOriginX": [2.0], "rlnOriginY": [-1.0], "rlnImagePixelSize": [1.5],
                       "rlnImageName": ["1@a.mrcs"]})
    _, shifts = poses_from_particles(df)
    assert np.allclose(shifts.numpy(), [[0.0, 1.5, -3.0]])
    back = particles_with_poses(df, *poses_from_particles(df))
    assert np.allclose(back[["rlnOriginX", "rlnOriginY"]].to_numpy(), [[2.0, -1.0]])
    assert "rlnOriginXAngst" not in back.columns


@pytest.mark.parametrize("rel", ["particles/relion31/relion31.star", WARP + ".star"])
def test_poses_roundtrip_through_columns(data_dir, tmp_path, rel):
    t = read_particles(data_dir / rel)
    rot, shifts = poses_from_particles(t)
    rng = np.random.default_rng(0)
    new_shifts = shifts.numpy() + rng.normal(size=shifts.shape) * (1 if "warp" in rel else 0)
    t.particles = particles_with_poses(t, rot, new_shifts)
    out = read_particles(write_particles(tmp_path / "p.star", t))
    rot2, shifts2 = poses_from_particles(out)
    assert torch.allclose(rot, rot2, atol=1e-9)
    assert np.allclose(shifts2.numpy(), new_shifts, atol=1e-9)


def test_relion5_tomo_particles_and_tomograms(data_dir):
    t = read_particles(data_dir / f"{WARP}.star")
    assert list(t.blocks) == ["general", "optics", "particles"]
    assert np.allclose(t.particles["rlnTomoTiltSeriesPixelSize"], 1.667)
    tomos = read_tomograms(data_dir / f"{WARP}_tomograms.star")
    assert len(tomos.tomograms) == 4 and len(tomos.tilt_series) == 4
    assert len(tomos.tilt_series["Unt_083.tomostar"]) == 37
    assert tomos.pixel_size_angstrom("Unt_050.tomostar") == pytest.approx(1.667)
    with pytest.raises(InputError, match="unknown tomogram"):
        tomos.pixel_size_angstrom("nope")


def test_relion5_tomograms_finds_project_relative_tilt_series(data_dir):
    tomos = read_tomograms(data_dir / "tomo_pytom/relion5_project_example/Tomograms/job009/"
                           "tomograms.star")
    assert len(tomos.tomograms) == 10
    assert list(tomos.tilt_series) == ["tomo200528_107"]  # the only one shipped
    ts = tomos.tilt_series["tomo200528_107"]
    assert len(ts) == 35 and "rlnTomoNominalStageTiltAngle" in ts.columns


def test_missing_required_columns(tmp_path):
    p = tmp_path / "bad.star"
    write_star(p, {"particles": pd.DataFrame({"rlnDefocusU": [1.0, 2.0]})})
    with pytest.raises(InputError) as ei:
        read_particles(p)
    assert ei.value.field == "rlnImageName" and ei.value.file == str(p)
    write_star(p, {"particles": pd.DataFrame({"rlnImageName": ["1@a.mrcs"]})})
    with pytest.raises(InputError) as ei:
        poses_from_particles(read_particles(p))
    assert ei.value.field == "rlnAngleRot"
    with pytest.raises(InputError, match="pixel size"):
        pixel_size_angstrom(read_particles(p))


def test_undefined_optics_group(tmp_path):
    p = tmp_path / "bad.star"
    write_star(p, {
        "optics": pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.0]}),
        "particles": pd.DataFrame({"rlnImageName": ["1@a.mrcs"], "rlnOpticsGroup": [2]}),
    })
    with pytest.raises(InputError) as ei:
        read_particles(p)
    assert ei.value.field == "rlnOpticsGroup" and "[1]" in ei.value.expected


def test_inconsistent_optics_on_write(data_dir, tmp_path):
    t = read_particles(data_dir / "particles/relion31/relion31.star")
    t.particles.loc[0, "rlnVoltage"] = 200.0
    with pytest.raises(InputError) as ei:
        write_particles(tmp_path / "x.star", t)
    assert ei.value.field == "rlnVoltage"
    assert not (tmp_path / "x.star").exists()
    # a consistent change of the whole group is written to the optics block
    t.particles["rlnVoltage"] = 200.0
    out = read_star(write_particles(tmp_path / "x.star", t))
    assert out["optics"]["rlnVoltage"].tolist() == [200.0]
    assert "rlnVoltage" not in out["particles"].columns


def test_not_a_star_file(tmp_path):
    with pytest.raises(InputError):
        read_star(tmp_path / "missing.star")
    p = tmp_path / "empty.star"
    p.write_text("just text\n")
    with pytest.raises(InputError):
        read_star(p)
