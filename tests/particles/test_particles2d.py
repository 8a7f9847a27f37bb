"""2D particle simulator: projection against a real-space reference, SNR, CTF sign, STAR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform
from scipy.spatial.transform import Rotation

from cryoframe import InputError
from cryoframe.simulate.particles2d import (
    ParticleSimConfig,
    longest_diameter_angstrom,
    project_volume,
    simulate_particle_stack,
    simulate_particles,
    viewing_direction_classes,
    viewing_directions,
)


def _reference_projection(vol: np.ndarray, r: np.ndarray, voxel: float) -> np.ndarray:
    """Slow reference: particle(x) = V(Rᵀ(x − c) + c) by scipy, then the sum along z."""
    c = np.array(vol.shape) // 2
    rotated = affine_transform(vol, r.T, offset=c - r.T @ c, order=1)
    return rotated.sum(0) * voxel


def test_fourier_slice_matches_real_space(small_density):
    vol, vs = small_density
    rots = Rotation.random(3, random_state=3).as_matrix().astype(np.float32)
    fast = project_volume(vol, rots, vs).numpy()
    for r, img in zip(rots, fast):
        ref = _reference_projection(vol, r, vs)
        assert np.corrcoef(ref.ravel(), img.ravel())[0, 1] > 0.995
        assert abs(img.sum() / ref.sum() - 1) < 0.02
        assert np.abs(img - ref).max() < 0.12 * np.abs(ref).max()


def test_resampled_projection_keeps_line_integral(small_density):
    vol, vs = small_density
    r = torch.eye(3)[None]
    a = project_volume(vol, r, vs)  # 10 Å pixels
    b = project_volume(vol, r, vs, box_size_px=2 * vol.shape[0], pixel_size_angstrom=vs / 2)
    # ∫ image dA is the same at both samplings
    assert abs(float(b.sum()) * (vs / 2) ** 2 / (float(a.sum()) * vs ** 2) - 1) < 0.01


def test_identity_projection_is_sum_along_z(small_density):
    vol, vs = small_density
    img = project_volume(vol, torch.eye(3)[None], vs)[0].numpy()
    np.testing.assert_allclose(img, vol.sum(0) * vs, atol=0.03 * np.abs(img).max())


def test_viewing_direction_and_classes():
    # rotation about z (in-plane) keeps the viewing direction e_z
    c, s = np.cos(0.7), np.sin(0.7)
    rz = torch.tensor([[[1, 0, 0], [0, c, -s], [0, s, c]]], dtype=torch.float32)
    assert torch.allclose(viewing_directions(rz)[0], torch.tensor([1.0, 0, 0]), atol=1e-6)
    rots = torch.as_tensor(Rotation.random(3000, random_state=0).as_matrix(), dtype=torch.float32)
    labels, dist = viewing_direction_classes(rots)
    counts = torch.bincount(labels, minlength=12)
    assert counts.min() > 150 and counts.max() < 350  # near-uniform partition, 250 expected
    assert float(dist.max()) < 38.0  # icosahedral Voronoi cell radius 37.4°


def test_diameter_of_a_rod():
    vol = np.zeros((40, 40, 40), np.float32)
    vol[20, 20, 5:35] = 1.0
    assert abs(longest_diameter_angstrom(vol, 2.0) - 60.0) < 1e-6


def test_snr_exact_and_contrast(small_density):
    vol, vs = small_density
    sim = simulate_particles(vol, vs, 24, ParticleSimConfig(snr=0.05),
                             torch.Generator().manual_seed(1))
    snr = sim.clean.var(dim=(-2, -1)) / (sim.images - sim.clean).var(dim=(-2, -1))
    assert torch.allclose(snr, torch.full_like(snr, 0.05), rtol=0.01)
    # protein is white after the contrast inversion (RELION-extracted convention)
    centre = sim.clean[:, 28:36, 28:36].mean()
    assert centre > 3 * sim.clean[:, :6, :6].abs().mean()
    # box is 1.6 × diameter
    diam = longest_diameter_angstrom(vol, vs)
    assert abs(sim.pixel_size_angstrom * 64 - 1.6 * diam) < 1e-3


def test_no_contrast_inversion_gives_dark_protein(small_density):
    vol, vs = small_density
    cfg = ParticleSimConfig(snr=None, invert_contrast=False)
    sim = simulate_particles(vol, vs, 8, cfg, torch.Generator().manual_seed(1))
    assert sim.clean[:, 28:36, 28:36].mean() < 0


def test_stack_star_round_trip(tmp_path):
    from cryoframe.io.mrc import read_image_stack
    from cryoframe.io.star import poses_from_particles, read_particles

    sim = simulate_particle_stack("3QM1", 10, tmp_path / "p.star", seed=2, snr=0.5,
                                  shift_sigma_angstrom=5.0)
    table = read_particles(tmp_path / "p.star")
    assert len(table) == 10
    rot, shifts = poses_from_particles(table)
    assert torch.allclose(rot.float(), sim.rotations, atol=1e-5)
    assert torch.allclose(shifts[:, 1:].float(), sim.shifts_yx_angstrom, atol=1e-4)
    np.testing.assert_allclose(table.particles["rlnDefocusU"], sim.defocus_u_angstrom, rtol=1e-6)
    assert np.allclose(table.particles["rlnImagePixelSize"], sim.pixel_size_angstrom)
    stack = read_image_stack(tmp_path / "p.mrcs")
    np.testing.assert_allclose(stack.data, sim.images.numpy(), rtol=1e-6)


def test_shift_moves_the_particle(small_density):
    vol, vs = small_density
    r = torch.eye(3)[None]
    a = project_volume(vol, r, vs)[0]
    b = project_volume(vol, r, vs, shifts_yx_angstrom=torch.tensor([[3 * vs, -2 * vs]]))[0]
    assert torch.allclose(torch.roll(a, (3, -2), dims=(0, 1)), b, atol=1e-3 * float(a.abs().max()))


def test_bad_inputs():
    with pytest.raises(InputError):
        project_volume(np.zeros((4, 5, 6)), torch.eye(3)[None])
    with pytest.raises(InputError):
        simulate_particle_stack("NOPE", 2)
