"""Rotation utilities: conventions, round trips, distances, SO(3) grid covering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.geometry.rotations import (
    axis_angle_to_matrix,
    fibonacci_sphere,
    frobenius_distance,
    geodesic_distance_deg,
    geodesic_distance_rad,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_matrix,
    random_rotations,
    rot6d_to_matrix,
    rotation_about,
    so3_grid,
    svd_orthogonalize,
)

D = torch.float64
EZ, EY, EX = torch.eye(3, dtype=D)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_named_rotations_are_right_handed():
    assert torch.allclose(rotation_about("x", math.pi / 2) @ EY, EZ, atol=1e-12)
    assert torch.allclose(rotation_about("y", math.pi / 2) @ EZ, EX, atol=1e-12)
    assert torch.allclose(rotation_about("z", math.pi / 2) @ EX, EY, atol=1e-12)


def test_random_rotations_are_proper_and_seeded():
    r = random_rotations(1000, _gen(1), D)
    eye = torch.eye(3, dtype=D).expand(1000, 3, 3)
    assert torch.allclose(r @ r.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(1000, dtype=D), atol=1e-12)
    assert torch.equal(r, random_rotations(1000, _gen(1), D))
    assert random_rotations(3).dtype == torch.float32


def test_random_rotations_are_haar_uniform():
    # For Haar measure: E[R] = 0 and the rotation angle has density (1 − cos θ)/π, mean π/2 + 2/π
    r = random_rotations(20000, _gen(2), D)
    assert r.mean(0).abs().max() < 0.02
    theta = geodesic_distance_rad(r, torch.eye(3, dtype=D))
    assert abs(theta.mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.01


def test_quaternion_round_trip_and_axis_convention():
    r = random_rotations(500, _gen(3), D)
    q = matrix_to_quaternion(r)
    assert (q[:, 0] >= 0).all()
    assert torch.allclose(quaternion_to_matrix(q), r, atol=1e-12)
    assert torch.allclose(quaternion_to_matrix(-q), r, atol=1e-12)
    # q = (cos θ/2, sin θ/2 · axis_zyx)
    th = 0.7
    qz = torch.tensor([math.cos(th / 2), math.sin(th / 2), 0, 0], dtype=D)
    assert torch.allclose(quaternion_to_matrix(qz), rotation_about("z", th), atol=1e-12)
    qx = torch.tensor([math.cos(th / 2), 0, 0, math.sin(th / 2)], dtype=D)
    assert torch.allclose(quaternion_to_matrix(qx), rotation_about("x", th), atol=1e-12)


def test_axis_angle_round_trip():
    r = random_rotations(500, _gen(4), D)
    axis, angle = matrix_to_axis_angle(r)
    assert torch.allclose(axis_angle_to_matrix(axis, angle), r, atol=1e-10)
    assert torch.allclose(axis_angle_to_matrix(EY, torch.tensor(0.3, dtype=D)),
                          rotation_about("y", 0.3), atol=1e-12)


def test_geodesic_and_frobenius_distances():
    r = random_rotations(200, _gen(5), D)
    angles = torch.linspace(0, math.pi, 200, dtype=D)
    axes = torch.randn(200, 3, generator=_gen(6), dtype=D)
    r2 = r @ axis_angle_to_matrix(axes, angles)
    assert torch.allclose(geodesic_distance_rad(r, r2), angles, atol=1e-7)
    assert torch.allclose(geodesic_distance_deg(r, r2), torch.rad2deg(angles), atol=1e-5)
    assert torch.allclose(frobenius_distance(r, r2), 2 * math.sqrt(2) * torch.sin(angles / 2),
                          atol=1e-10)
    # precise near 0: arccos alone would lose ~1e-8 rad here
    tiny = geodesic_distance_rad(r, r @ rotation_about("x", 1e-9))
    assert torch.allclose(tiny, torch.full_like(tiny, 1e-9), rtol=1e-4)
    # numpy input accepted
    assert float(geodesic_distance_deg(np.eye(3), rotation_about("z", math.pi / 2))) == \
        pytest.approx(90.0)


def test_rot6d_and_svd_maps():
    r = random_rotations(100, _gen(7), D)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(r)), r, atol=1e-12)
    noisy = r + 0.05 * torch.randn(100, 3, 3, generator=_gen(8), dtype=D)
    for out in (rot6d_to_matrix(matrix_to_rot6d(noisy)), svd_orthogonalize(noisy.reshape(100, 9))):
        assert torch.allclose(torch.linalg.det(out), torch.ones(100, dtype=D), atol=1e-10)
        assert geodesic_distance_deg(out, r).max() < 15
    # SVD projection is the Frobenius-closest rotation: never farther than the 6D one
    d_svd = frobenius_distance(svd_orthogonalize(noisy), noisy)
    d_6d = frobenius_distance(rot6d_to_matrix(matrix_to_rot6d(noisy)), noisy)
    assert (d_svd <= d_6d + 1e-12).all()
    # improper input is mapped to a proper rotation
    assert torch.linalg.det(svd_orthogonalize(-torch.eye(3, dtype=D))) == pytest.approx(1.0)


def test_fibonacci_sphere_is_unit_and_balanced():
    p = fibonacci_sphere(500)
    assert torch.allclose(torch.linalg.norm(p, dim=-1), torch.ones(500, dtype=D))
    assert p.mean(0).abs().max() < 0.01
    assert (fibonacci_sphere(50, hemisphere=True)[:, 0] > 0).all()


@pytest.mark.parametrize("step_deg", [30.0, 20.0])
def test_so3_grid_covering_radius(step_deg):
    grid = so3_grid(step_deg, dtype=D)
    assert torch.equal(grid, so3_grid(step_deg, dtype=D))
    assert torch.allclose(torch.linalg.det(grid), torch.ones(len(grid), dtype=D), atol=1e-12)
    probes = random_rotations(2000, _gen(9), D)
    # nearest grid element: max trace of Rᵀ G  ⇔  min geodesic distance
    tr = torch.einsum("pij,gij->pg", probes, grid)
    nearest = torch.rad2deg(torch.arccos(((tr.max(1).values - 1) / 2).clamp(-1, 1)))
    # documented: covering radius ≈ 0.8 step, mean nearest distance ≈ 0.48 step
    assert nearest.max() < 0.9 * step_deg
    assert 0.4 * step_deg < nearest.mean() < 0.55 * step_deg


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        so3_grid(0)
    with pytest.raises(InputError):
        rotation_about("w", 0.1)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        geodesic_distance_deg(torch.eye(2), torch.eye(2))
    with pytest.raises(InputError):
        quaternion_to_matrix(torch.ones(3))
