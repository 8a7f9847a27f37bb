"""CTF: wavelength, zeros, sign, astigmatism, envelope, and RELION's formula."""

from __future__ import annotations

import math

import pytest
import torch

from cryoframe import InputError
from cryoframe.fourier.ctf import (
    apply_ctf_2d,
    ctf_2d,
    electron_wavelength_angstrom,
    first_zero_cycles_per_angstrom,
    phase_flip_2d,
)

D = torch.float64


def test_relativistic_wavelength():
    assert electron_wavelength_angstrom(300) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength_angstrom(200) == pytest.approx(0.025079, abs=2e-6)
    assert electron_wavelength_angstrom(100) == pytest.approx(0.037014, abs=2e-6)


def _row(defocus, n=1024, pixel=1.0, **kw):
    c = ctf_2d((n, n), pixel, defocus, rfft=True, dtype=D, **kw)[0]  # k_y = 0, k_x ≥ 0
    return torch.fft.rfftfreq(n, dtype=D) / pixel, c


def test_first_zero_without_cs_is_textbook():
    # Q = 0, Cs = 0: first zero at k = 1/√(λ Δf): 1 µm at 300 kV → 1/14.03 Å
    dz = 10_000.0
    k0 = first_zero_cycles_per_angstrom(dz, cs_mm=0.0, amplitude_contrast=0.0)
    assert 1 / k0 == pytest.approx(math.sqrt(electron_wavelength_angstrom(300) * dz), rel=1e-12)
    assert 1 / k0 == pytest.approx(14.031, abs=1e-3)
    k, c = _row(dz, cs_mm=0.0, amplitude_contrast=0.0)
    first_sign_change = int(torch.nonzero(c[1:] > 0)[0]) + 1
    assert k[first_sign_change - 1] <= k0 <= k[first_sign_change]


@pytest.mark.parametrize("defocus", [8_000.0, 15_000.0, 30_000.0])
def test_first_zero_with_cs_and_amplitude_contrast(defocus):
    k0 = first_zero_cycles_per_angstrom(defocus, cs_mm=2.7, amplitude_contrast=0.07)
    k, c = _row(defocus, cs_mm=2.7, amplitude_contrast=0.07)
    i = int(torch.nonzero(c[1:] > 0)[0]) + 1
    assert k[i - 1] <= k0 <= k[i]
    # the analytic zero is a zero of the grid formula (evaluate on a grid hitting it)
    n = 512
    pixel = (1 / k0) * 64 / n  # k0 falls on rfft bin 64
    c64 = ctf_2d((n, n), pixel, defocus, cs_mm=2.7, amplitude_contrast=0.07, rfft=True,
                 dtype=D)[0, 64]
    assert abs(float(c64)) < 1e-9


def test_sign_at_low_frequency():
    c = ctf_2d((64, 64), 1.0, 20_000.0, amplitude_contrast=0.1, rfft=True, dtype=D)
    assert float(c[0, 0]) == pytest.approx(-0.1)  # CTF(0) = −Q
    assert (c[0, :3] < 0).all()  # underfocus: protein dark before the first zero
    over = ctf_2d((64, 64), 1.0, -20_000.0, amplitude_contrast=0.0, cs_mm=0.0, rfft=True, dtype=D)
    assert (over[0, 1:3] > 0).all()  # overfocus flips the low-frequency phase contrast
    pp = ctf_2d((64, 64), 1.0, 0.0, amplitude_contrast=0.0, phase_shift_deg=90.0, dtype=D)
    assert float(pp[0, 0]) == pytest.approx(-1.0)  # Volta phase plate: full contrast at DC


def test_astigmatism_symmetries():
    n, pixel = 127, 1.5  # odd: every frequency has its Friedel mate on the grid
    u, v, ang = 18_000.0, 12_000.0, 30.0
    c = ctf_2d((n, n), pixel, u, v, ang, dtype=D)
    # Friedel symmetry: C(k) = C(−k)
    flipped = torch.roll(torch.flip(c, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))
    assert torch.allclose(c, flipped, atol=1e-12)
    # swapping U and V equals rotating the astigmatism axis by 90°
    assert torch.allclose(c, ctf_2d((n, n), pixel, v, u, ang + 90.0, dtype=D), atol=1e-12)
    # along the U axis the CTF equals the isotropic CTF with defocus U, along V with V
    # (axis at 45° so that the diagonal grid points lie exactly on it)
    iso = ctf_2d((n, n), pixel, u, dtype=D)
    c45 = ctf_2d((n, n), pixel, u, v, 45.0, dtype=D)
    diag = torch.arange(1, 20)
    assert torch.allclose(c45[diag, diag], iso[diag, diag], atol=1e-12)
    c45v = ctf_2d((n, n), pixel, v, dtype=D)
    assert torch.allclose(c45[-diag, diag], c45v[-diag, diag], atol=1e-12)
    # mirror symmetry about the U axis (at 0°: k_y → −k_y)
    c0 = ctf_2d((n, n), pixel, u, v, 0.0, dtype=D)
    assert torch.allclose(c0, torch.roll(torch.flip(c0, dims=(0,)), 1, dims=0), atol=1e-12)
    assert not torch.allclose(c, torch.roll(torch.flip(c, dims=(0,)), 1, dims=0), atol=1e-3)


def test_matches_relion_getctf_up_to_overall_sign():
    """Reference: RELION CTF::getCTF written out (defocus_average = −(U+V)/2, etc.)."""
    n, pixel, u, v, azim = 64, 1.2, 15_000.0, 11_000.0, 37.0
    kv, cs, q, bfac, ps = 300.0, 2.7, 0.1, 50.0, 20.0
    lam = electron_wavelength_angstrom(kv)
    ours = ctf_2d((n, n), pixel, u, v, azim, kv, cs, q, bfac, ps, dtype=D)
    k1, k2 = math.pi * lam, math.pi / 2 * cs * 1e7 * lam**3
    k3, k5 = math.atan(q / math.sqrt(1 - q * q)), math.radians(ps)
    avg, dev = -(u + v) / 2, -(u - v) / 2
    for iy, ix in [(0, 1), (3, 5), (-7, 2), (10, -11), (31, 20), (-20, -30)]:
        y, x = (iy % n - n * (iy % n >= n // 2)) / (n * pixel), (ix % n - n * (ix % n >= n // 2)) \
            / (n * pixel)
        u2 = x * x + y * y
        deltaf = avg + dev * math.cos(2 * (math.atan2(y, x) - math.radians(azim)))
        arg = k1 * deltaf * u2 + k2 * u2 * u2 - k5 - k3
        relion = -math.sin(arg) * math.exp(-bfac / 4 * u2)
        assert float(ours[iy, ix]) == pytest.approx(-relion, abs=1e-12)


def test_bfactor_envelope_and_batching():
    d = torch.tensor([10_000.0, 20_000.0, 30_000.0], dtype=D)
    c0 = ctf_2d((32, 32), 2.0, d, b_factor_angstrom2=0.0, rfft=True, dtype=D)
    c1 = ctf_2d((32, 32), 2.0, d, b_factor_angstrom2=100.0, rfft=True, dtype=D)
    assert c0.shape == (3, 32, 17)
    k2 = (torch.fft.rfftfreq(32, dtype=D) / 2.0) ** 2
    assert torch.allclose(c1[:, 0], c0[:, 0] * torch.exp(-100.0 * k2 / 4), atol=1e-12)


def test_apply_and_phase_flip():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 32, 32, generator=g, dtype=D)
    ones = torch.ones(32, 17, dtype=D)
    assert torch.allclose(apply_ctf_2d(img, ones), img, atol=1e-12)
    c_full = ctf_2d((32, 32), 1.0, 12_000.0, dtype=D)
    c_half = ctf_2d((32, 32), 1.0, 12_000.0, rfft=True, dtype=D)
    assert torch.allclose(apply_ctf_2d(img, c_full), apply_ctf_2d(img, c_half), atol=1e-12)
    flipped = phase_flip_2d(phase_flip_2d(img, c_half), c_half)
    assert torch.allclose(flipped, img, atol=1e-10)
    # phase flipping the CTF-corrupted image leaves |CTF| as transfer: low frequencies positive
    blob = torch.zeros(32, 32, dtype=D)
    blob[14:18, 14:18] = 1.0
    out = phase_flip_2d(apply_ctf_2d(blob, c_half), c_half)
    assert float(out.sum()) > 0
    with pytest.raises(InputError):
        apply_ctf_2d(img, torch.ones(31, 17))


def test_bad_parameters():
    with pytest.raises(InputError):
        ctf_2d((32, 32), 0.0, 10_000.0)
    with pytest.raises(InputError):
        ctf_2d((32, 32), 1.0, 10_000.0, amplitude_contrast=1.0)
    with pytest.raises(InputError):
        electron_wavelength_angstrom(-300)
