"""RELION ZYZ and Dynamo ZXZ Euler conventions against cryoframe pose matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoframe.geometry.euler import (
    dynamo_euler_to_matrix,
    matrix_to_dynamo_euler,
    matrix_to_relion_euler,
    relion_euler_to_matrix,
)
from cryoframe.geometry.rotations import (
    geodesic_distance_rad,
    random_rotations,
    rotation_about,
    xyz_to_zyx_matrix,
)

D = torch.float64

# Equivalent pair (same reconstruction in both packages), from the tests of teamtomo's
# `eulerangles` package: alisterburt/eulerangles, test/test_convert_eulers.py.
DYNAMO_PAIR = (-47.2730, 1.1777, -132.3000)
RELION_PAIR = (137.7000, 1.1777, 42.7270)


def _relion_a_reference(rot, tilt, psi):
    """RELION's Euler_angles2matrix written out element by element (xyz, degrees)."""
    a, b, g = (math.radians(v) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(g), \
        math.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return torch.tensor([
        [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
        [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
        [sc, ss, cb],
    ], dtype=D)


@pytest.mark.parametrize("angles", [(10.0, 20.0, 30.0), (-170.0, 95.0, 44.0), (0.0, 0.0, 0.0)])
def test_relion_matrix_matches_relion_elementwise(angles):
    expected = xyz_to_zyx_matrix(_relion_a_reference(*angles))
    assert torch.allclose(relion_euler_to_matrix(*angles), expected, atol=1e-12)


def test_relion_rot_only_is_inverse_z_rotation_of_the_reference():
    # RELION: a pure rot of +90° rotates the reference by −90° about z (passive matrices)
    assert torch.allclose(relion_euler_to_matrix(90.0, 0.0, 0.0),
                          rotation_about("z", -math.pi / 2), atol=1e-12)


def test_known_relion_dynamo_pair():
    r_rel = relion_euler_to_matrix(*RELION_PAIR)
    r_dyn = dynamo_euler_to_matrix(*DYNAMO_PAIR)
    assert float(geodesic_distance_rad(r_rel, r_dyn)) < 1e-6
    # the pair discriminates between candidate conventions (errors ≥ 0.8° vs < 1e-6 rad):
    # not the transpose, and neither form of the intrinsic Rz(tdrot)·Rx(tilt)·Rz(narot)
    assert float(geodesic_distance_rad(r_rel, r_dyn.transpose(-1, -2))) > 1e-2
    td, ti, na = (torch.tensor(math.radians(v), dtype=D) for v in DYNAMO_PAIR)
    intrinsic = rotation_about("z", td) @ rotation_about("x", ti) @ rotation_about("z", na)
    for alt in (intrinsic, intrinsic.T):
        assert float(geodesic_distance_rad(r_rel, alt)) > 1e-2
    # converting the angles directly reproduces the published partner to 1e-4°
    rot, tilt, psi = matrix_to_relion_euler(r_dyn)
    assert [float(rot), float(tilt), float(psi)] == pytest.approx(list(RELION_PAIR), abs=1e-4)
    tdrot, tilt_d, narot = matrix_to_dynamo_euler(r_rel)
    assert [float(tdrot), float(tilt_d), float(narot)] == pytest.approx(list(DYNAMO_PAIR),
                                                                      abs=1e-4)


@pytest.mark.parametrize("convention", ["relion", "dynamo"])
def test_round_trip_10000_random_rotations(convention):
    to_m, to_e = {
        "relion": (relion_euler_to_matrix, matrix_to_relion_euler),
        "dynamo": (dynamo_euler_to_matrix, matrix_to_dynamo_euler),
    }[convention]
    r = random_rotations(10_000, torch.Generator().manual_seed(11), D)
    angles = to_e(r)
    assert float(geodesic_distance_rad(to_m(*angles), r).max()) < 1e-6
    a, tilt, b = angles
    assert (tilt >= 0).all() and (tilt <= 180).all()
    assert (a > -180).all() and (a <= 180).all() and (b > -180).all() and (b <= 180).all()


@pytest.mark.parametrize("convention", ["relion", "dynamo"])
@pytest.mark.parametrize("tilt", [0.0, 180.0, 1e-7, 180.0 - 1e-7])
def test_gimbal_lock(convention, tilt):
    to_m, to_e = {
        "relion": (relion_euler_to_matrix, matrix_to_relion_euler),
        "dynamo": (dynamo_euler_to_matrix, matrix_to_dynamo_euler),
    }[convention]
    g = torch.Generator().manual_seed(12)
    first = torch.rand(50, generator=g, dtype=D) * 360 - 180
    third = torch.rand(50, generator=g, dtype=D) * 360 - 180
    r = to_m(first, torch.full((50,), tilt, dtype=D), third)
    assert float(geodesic_distance_rad(to_m(*to_e(r)), r).max()) < 1e-6


def test_input_types_and_dtypes():
    r_np = relion_euler_to_matrix(np.array([10.0, 20.0]), np.array([30.0, 40.0]), 50.0)
    assert r_np.shape == (2, 3, 3) and r_np.dtype == torch.float64
    r32 = dynamo_euler_to_matrix(torch.tensor([10.0]), torch.tensor([20.0]), torch.tensor([30.0]))
    assert r32.dtype == torch.float32
    assert matrix_to_relion_euler(r32)[0].dtype == torch.float32
