"""Missing-wedge masks: geometry, tilt axes, asymmetric ranges, rfft layout."""

from __future__ import annotations

import math

import pytest
import torch

from cryoframe import InputError
from cryoframe.fourier.wedge import missing_wedge_mask, tilt_elevation_deg
from cryoframe.geometry.rotations import rotation_about

D = torch.float64
EZ, EY, EX = torch.eye(3, dtype=D)


@pytest.mark.parametrize("alpha_deg", [-75.0, -40.0, 0.0, 25.0, 60.0, 89.0])
def test_elevation_matches_physical_specimen_tilt(alpha_deg):
    # specimen tilted by R_axis(α): the zero-tilt plane k_z = 0 is seen through R_axis(α)ᵀ
    a = math.radians(alpha_deg)
    k_y = rotation_about("y", -a) @ EX
    assert float(tilt_elevation_deg(k_y, "y")) == pytest.approx(alpha_deg, abs=1e-9)
    k_x = rotation_about("x", -a) @ EY
    assert float(tilt_elevation_deg(k_x, "x")) == pytest.approx(alpha_deg, abs=1e-9)
    # the tilt axis itself is in every plane
    assert float(tilt_elevation_deg(EY, "y")) == 0.0


def test_symmetric_wedge_geometry():
    n = 32
    m = missing_wedge_mask((n, n, n), -60, 60, fftshift=True, dtype=D)
    c = n // 2
    assert m[c, c, c + 5] == 1  # k_x axis: zero tilt
    assert m[c + 5, c, c] == 0  # k_z axis: the beam direction is never sampled
    assert m[c + 5, c + 3, c] == 0 and m[c, c + 7, c] == 1  # k_y: tilt axis
    assert m[c + 5, c, c + 5] == 1  # 45° elevation inside ±60°
    assert missing_wedge_mask((n, n, n), -30, 30, fftshift=True)[c + 5, c, c + 5] == 0
    # measured fraction of the disc |k| ≤ Nyquist in the k_z–k_x plane ≈ 120/180
    kz, kx = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    disc = (kz**2 + kx**2 <= c**2) & ((kz != 0) | (kx != 0))
    assert abs(float(m[:, c, :][disc].mean()) - 120 / 180) < 0.02


def test_asymmetric_range_and_axis_x():
    n = 32
    m = missing_wedge_mask((n, n, n), -30, 60, fftshift=True)
    c = n // 2
    assert m[c + 5, c, c + 5] == 1  # tan α = k_z/k_x = 1 → +45°
    assert m[c - 5, c, c + 5] == 0  # −45° is outside [−30, 60]
    mx = missing_wedge_mask((n, n, n), -30, 60, tilt_axis="x", fftshift=True)
    assert mx[c - 5, c + 5, c] == 1  # tan α = −k_z/k_y = 1 → +45°
    assert mx[c + 5, c + 5, c] == 0
    sym_y = missing_wedge_mask((n, n, n), -50, 50)
    sym_x = missing_wedge_mask((n, n, n), -50, 50, tilt_axis="x")
    assert torch.equal(sym_x, sym_y.transpose(1, 2))


def test_tilt_axis_is_always_measured_even_for_a_range_excluding_zero():
    n = 16
    for axis, idx in (("y", (0, 3, 0)), ("x", (0, 0, 3))):
        m = missing_wedge_mask((n, n, n), 10, 60, tilt_axis=axis)
        assert m[0, 0, 0] == 1 and m[idx] == 1
        assert m[0, 0, 3] + m[0, 3, 0] == 1  # the zero-tilt direction ⊥ axis is not


def test_rfft_layout_and_full_range():
    shape = (16, 18, 20)
    full = missing_wedge_mask(shape, -45, 55)
    half = missing_wedge_mask(shape, -45, 55, rfft=True)
    assert half.shape == torch.fft.rfftn(torch.zeros(shape)).shape
    assert torch.equal(half, full[..., : 20 // 2 + 1])
    assert missing_wedge_mask(shape, -90, 90).min() == 1
    with pytest.raises(InputError):
        missing_wedge_mask(shape, 60, -60)
    with pytest.raises(InputError):
        missing_wedge_mask((16, 16), -60, 60)
