"""Canonical subtomogram table ↔ RELION ↔ Dynamo: matrices, positions and shifts survive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.geometry.euler import relion_euler_to_matrix
from cryoframe.io.dynamo import read_tbl, write_tbl
from cryoframe.io.star import read_particles, write_particles
from cryoframe.io.subtomo_table import (
    COORD_COLUMNS,
    SHIFT_COLUMNS,
    make_subtomo_table,
    subtomo_from_dynamo,
    subtomo_from_relion,
    subtomo_rotations,
    subtomo_to_dynamo,
    subtomo_to_relion,
)

WARP = "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star"


def _random_table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, a, b, c = q.T  # unit quaternion → rotation matrix (any parametrisation is fine here)
    rot = np.stack([
        np.stack([1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)], -1),
        np.stack([2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)], -1),
        np.stack([2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)], -1),
    ], 1)
    coords = rng.uniform(0, 4000, size=(n, 3))
    shifts = rng.normal(scale=5, size=(n, 3))
    names = [f"tomo_{i % 3}" for i in range(n)]
    return make_subtomo_table(coords, rot, shifts, names, rng.integers(1, 5, n))


def test_relion_dynamo_relion_same_matrices_fixture(data_dir, tmp_path):
    table = read_particles(data_dir / WARP)
    canon = subtomo_from_relion(table)
    tbl, index = subtomo_to_dynamo(canon, 1.667)
    back = subtomo_from_dynamo(read_tbl(write_tbl(tmp_path / "p.tbl", tbl)), 1.667, index)
    rel = subtomo_to_relion(back, 1.667)
    final = subtomo_from_relion(read_particles(write_particles(tmp_path / "p.star", rel)))
    r0 = relion_euler_to_matrix(*(table.particles[c].to_numpy(copy=True)
                                  for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")))
    assert torch.allclose(subtomo_rotations(final), r0.double(), atol=1e-9)
    assert np.allclose(final[list(COORD_COLUMNS)], canon[list(COORD_COLUMNS)], atol=1e-6)
    assert final["tomo_name"].tolist() == table.particles["rlnTomoName"].tolist()
    # coordinates in Å = pixels × rlnTomoTiltSeriesPixelSize (1.667 Å)
    assert canon.loc[0, "coord_x_angstrom"] == pytest.approx(494.521 * 1.667)


def test_random_poses_roundtrip_both_ways(tmp_path):
    canon = _random_table()
    px = 2.5
    tbl, index = subtomo_to_dynamo(canon, px)
    via_dyn = subtomo_from_dynamo(read_tbl(write_tbl(tmp_path / "r.tbl", tbl)), px, index)
    via_rel = subtomo_from_relion(read_particles(write_particles(tmp_path / "r.star",
                                                                 subtomo_to_relion(canon, px))))
    for out in (via_dyn, via_rel):
        assert torch.allclose(subtomo_rotations(out), subtomo_rotations(canon), atol=1e-8)
        for cols in (COORD_COLUMNS, SHIFT_COLUMNS):
            assert np.allclose(out[list(cols)], canon[list(cols)], atol=1e-6)
        assert out["tomo_name"].tolist() == canon["tomo_name"].tolist()
        assert out["class_id"].tolist() == canon["class_id"].tolist()


def test_known_relion_dynamo_equivalent_angles(data_dir):
    # RELION (rot, tilt, psi) and Dynamo (tdrot, tilt, narot) describe the same pose when
    # tdrot = psi − 90, tilt = tilt, narot = rot + 90 (the relation used by dynamo2relion tools).
    canon = subtomo_from_relion(read_particles(data_dir / WARP))
    tbl, _ = subtomo_to_dynamo(canon, 1.667)
    rel = read_particles(data_dir / WARP).particles

    def wrap(a):
        return (np.asarray(a) + 180.0) % 360.0 - 180.0

    assert np.allclose(wrap(tbl["tdrot"] - (rel["rlnAnglePsi"] - 90)), 0, atol=1e-6)
    assert np.allclose(tbl["tilt"], rel["rlnAngleTilt"], atol=1e-6)
    assert np.allclose(wrap(tbl["narot"] - (rel["rlnAngleRot"] + 90)), 0, atol=1e-6)


def test_shift_signs_relion_vs_dynamo(tmp_path):
    # particle centre 3 px to +x of the box centre: Dynamo dx = +3 px, RELION origin = −3 px·Å/px
    canon = make_subtomo_table([[10.0, 20.0, 30.0]], np.eye(3)[None], [[0.0, 0.0, 6.0]], ["t"])
    tbl, _ = subtomo_to_dynamo(canon, 2.0)
    assert tbl.loc[0, "dx"] == pytest.approx(3.0) and tbl.loc[0, "x"] == pytest.approx(15.0)
    rel = subtomo_to_relion(canon, 2.0).particles
    assert rel.loc[0, "rlnOriginXAngst"] == pytest.approx(-6.0)
    assert rel.loc[0, "rlnCoordinateX"] == pytest.approx(15.0)


def test_dynamo_fixture_to_relion(data_dir, tmp_path):
    tbl = read_tbl(data_dir / "dynamo/t_double.tbl")
    canon = subtomo_from_dynamo(tbl, 4.0)
    assert canon.loc[0, "shift_x_angstrom"] == pytest.approx(2.5178 * 4)
    assert canon.loc[0, "coord_z_angstrom"] == pytest.approx(163.08 * 4)
    back = subtomo_from_relion(read_particles(write_particles(tmp_path / "d.star",
                                                              subtomo_to_relion(canon, 4.0))))
    assert torch.allclose(subtomo_rotations(back), subtomo_rotations(canon), atol=1e-9)
    tbl2, _ = subtomo_to_dynamo(back, 4.0)
    for col in ("x", "y", "z", "dx", "dy", "dz", "tag", "class", "tomo"):
        assert np.allclose(tbl2[col], tbl[col], atol=1e-9), col


def test_missing_pixel_size_and_columns(data_dir):
    with pytest.raises(InputError) as ei:
        subtomo_from_dynamo(read_tbl(data_dir / "dynamo/t_double.tbl"))
    assert ei.value.field == "apix"
    with pytest.raises(InputError) as ei:
        subtomo_from_relion(read_particles(data_dir / "particles/relion31/relion31.star"))
    assert ei.value.field == "rlnCoordinateZ"
    with pytest.raises(InputError):
        subtomo_to_dynamo(_random_table(3), 0.0)
