"""Low-pass, Hann ramp, Fourier crop/pad."""

from __future__ import annotations

import math

import pytest
import torch

from cryoframe import InputError
from cryoframe.fourier.filters import (
    fourier_crop,
    fourier_pad,
    gaussian_lowpass,
    hann_ramp_filter,
    lowpass,
    soft_lowpass_filter,
)

D = torch.float64


def _wave(n: int, cycles: float, ndim: int) -> torch.Tensor:
    x = torch.arange(n, dtype=D)
    w = torch.cos(2 * math.pi * cycles * x / n)
    return w.expand((n,) * ndim).clone()  # varies along the last axis only


def test_gaussian_lowpass_attenuates_exp_minus_half_at_target():
    n, pixel = 40, 2.0
    cycles = 10  # 10 cycles / 40 px = 0.25 cycles/px = 1/8 Å⁻¹
    out = gaussian_lowpass(_wave(n, cycles, 3), resolution_angstrom=8.0, pixel_size_angstrom=pixel)
    assert torch.allclose(out, math.exp(-0.5) * _wave(n, cycles, 3), atol=1e-12)
    out2 = gaussian_lowpass(_wave(n, cycles, 2)[None], 8.0, pixel, ndim=2)  # image stack
    assert torch.allclose(out2[0], math.exp(-0.5) * _wave(n, cycles, 2), atol=1e-12)


def test_soft_lowpass_edges():
    f = soft_lowpass_filter((64, 64), 0.25, soft_width=0.1, rfft=True, dtype=D)
    k = torch.fft.rfftfreq(64, dtype=D)
    row = f[0]
    assert torch.allclose(row[k <= 0.2], torch.ones_like(row[k <= 0.2]))
    assert torch.allclose(row[k >= 0.3], torch.zeros_like(row[k >= 0.3]))
    assert float(row[16]) == pytest.approx(0.5)  # k = 0.25
    x = _wave(32, 2, 3) + _wave(32, 14, 3)
    assert torch.allclose(lowpass(x, 0.25, 0.05), _wave(32, 2, 3), atol=1e-12)


def test_hann_ramp_filter():
    n = 64
    f = hann_ramp_filter((n, n), tilt_axis="y", rfft=True, dtype=D)
    kx = torch.fft.rfftfreq(n, dtype=D)
    hann = 0.5 * (1 + torch.cos(math.pi * kx / 0.5))
    assert torch.allclose(f[0, 1:], kx[1:] * hann[1:], atol=1e-12)
    assert float(f[0, 0]) == pytest.approx(1 / (4 * n))  # mean |k| over the DC bin
    assert float(f[0, -1]) == 0.0  # Hann reaches 0 at Nyquist
    # ramp only depends on k_x (perpendicular to the y axis) apart from the radial taper
    assert float(f[5, 3]) == pytest.approx(float(kx[3]) * 0.5 * (1 + math.cos(
        math.pi * math.hypot(5 / n, 3 / n) / 0.5)))
    fx = hann_ramp_filter((n, n), tilt_axis="x", rfft=False, dtype=D)
    fy = hann_ramp_filter((n, n), tilt_axis="y", rfft=False, dtype=D)
    assert torch.allclose(fx, fy.T)
    with pytest.raises(InputError):
        hann_ramp_filter((n, n), tilt_axis="z")  # type: ignore[arg-type]


def test_fourier_crop_keeps_band_limited_content_and_scale():
    x = _wave(32, 3, 3) + 2.0
    y = fourier_crop(x, 16)
    assert y.shape == (16, 16, 16)
    assert torch.allclose(y, _wave(16, 3, 3) + 2.0, atol=1e-12)
    imgs = _wave(32, 5, 2)[None].expand(4, 32, 32)
    assert torch.allclose(fourier_crop(imgs, (16, 16)), _wave(16, 5, 2).expand(4, 16, 16),
                          atol=1e-12)


def test_fourier_pad_is_sinc_interpolation_and_inverse_of_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(15, 15, 15, generator=g, dtype=D)  # odd: no Nyquist ambiguity
    up = fourier_pad(x, 31)
    assert up.shape == (31, 31, 31)
    assert torch.allclose(fourier_crop(up, 15), x, atol=1e-12)
    w = _wave(16, 3, 2)
    assert torch.allclose(fourier_pad(w, 32)[::2, ::2], w, atol=1e-12)  # old samples kept
    with pytest.raises(InputError):
        fourier_crop(x, 20)
    with pytest.raises(InputError):
        fourier_pad(x, 10)
