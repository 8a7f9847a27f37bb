"""FSC, resolution at a threshold, conical FSC, cFAR and the ``cryoframe fsc`` command."""

from __future__ import annotations

import json
import math

import mrcfile
import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.cli.main import main
from cryoframe.fourier.filters import gaussian_lowpass
from cryoframe.fourier.fsc import cfar, conical_fsc, fsc, fsc_crossing, resolution_at
from cryoframe.fourier.wedge import missing_wedge_mask, tilt_elevation_deg

D = torch.float64


def _signal(n: int, seed: int, res_px: float = 4.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = gaussian_lowpass(torch.randn(n, n, n, generator=g, dtype=D), res_px, 1.0)
    return s / s.std()


def _noise(n: int, seed: int, sigma: float) -> torch.Tensor:
    return sigma * torch.randn(n, n, n, generator=torch.Generator().manual_seed(seed), dtype=D)


def _loop_fsc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Slow reference: full FFT, explicit loop over voxels."""
    n = a.shape[0]
    fa, fb = torch.fft.fftn(a), torch.fft.fftn(b)
    f = torch.fft.fftfreq(n, dtype=D)
    num = torch.zeros(n // 2 + 1, dtype=D)
    d1, d2 = num.clone(), num.clone()
    for i in range(n):
        for j in range(n):
            for k in range(n):
                s = round(math.sqrt(float(f[i] ** 2 + f[j] ** 2 + f[k] ** 2)) * n)
                if s <= n // 2:
                    num[s] += (fa[i, j, k] * fb[i, j, k].conj()).real
                    d1[s] += fa[i, j, k].abs() ** 2
                    d2[s] += fb[i, j, k].abs() ** 2
    return num / torch.sqrt(d1 * d2)


@pytest.mark.parametrize("n", [8, 9])
def test_fsc_matches_loop_reference(n):
    a, b = _signal(n, 0, 2.0) + _noise(n, 1, 0.5), _signal(n, 0, 2.0) + _noise(n, 2, 0.5)
    freq, curve = fsc(a, b)
    assert torch.allclose(freq, torch.arange(n // 2 + 1, dtype=D) / n)
    assert torch.allclose(curve, _loop_fsc(a, b), atol=1e-12)


def test_fsc_of_identical_and_opposite_maps():
    a = _signal(24, 3)
    assert torch.allclose(fsc(a, a)[1], torch.ones(13, dtype=D), atol=1e-12)
    assert torch.allclose(fsc(a, -a)[1], -torch.ones(13, dtype=D), atol=1e-12)
    ring = fsc(a[0], a[0].numpy())[1]  # 2D FRC, numpy input accepted
    assert torch.allclose(ring, torch.ones_like(ring), atol=1e-12)


def test_fsc_matches_analytic_ssnr_relation():
    """FSC = SSNR / (1 + SSNR) per shell for signal + independent white noise."""
    n, sigma = 40, 1.5
    s = _signal(n, 4, res_px=5.0)
    freq, curve = fsc(s + _noise(n, 5, sigma), s + _noise(n, 6, sigma))
    # per-shell signal power (measured on this signal) and expected noise power σ² n³ per bin
    power = torch.fft.fftn(s).abs() ** 2
    kr = torch.linalg.norm(torch.stack(torch.meshgrid(*[torch.fft.fftfreq(n, dtype=D)] * 3,
                                                      indexing="ij"), -1), dim=-1)
    shells = torch.round(kr * n).long().flatten()
    keep = shells <= n // 2
    sig = torch.zeros(n // 2 + 1, dtype=D).index_add_(0, shells[keep], power.flatten()[keep])
    count = torch.zeros(n // 2 + 1, dtype=D).index_add_(0, shells[keep],
                                                          torch.ones_like(power).flatten()[keep])
    ssnr = sig / (count * sigma**2 * n**3)
    expected = ssnr / (1 + ssnr)
    dev = (curve - expected)[2:]
    assert expected[2] > 0.85 and expected[-1] < 0.05  # the test spans the whole curve
    assert float(dev.abs().max()) < 4 / math.sqrt(float(count[2]))  # ~4 σ of shell 2 noise
    assert float(dev.abs().mean()) < 0.02


def test_resolution_at_interpolates_and_reports_nyquist_limit():
    freq = torch.arange(11, dtype=D) / 20
    curve = torch.tensor([1, 0.99, 0.95, 0.9, 0.7, 0.5, 0.3, 0.1, 0.05, 0.02, 0.0], dtype=D)
    f, crossed = fsc_crossing(freq, curve, 0.143)
    assert crossed and f == pytest.approx((6 + (0.3 - 0.143) / 0.2) / 20)
    assert resolution_at(freq, curve, 0.143, 1.5) == pytest.approx(1.5 / f)
    assert resolution_at(freq, curve, 0.5, 2.0) == pytest.approx(2.0 / (5 / 20))
    flat = torch.full((11,), 0.9, dtype=D)
    f2, crossed2 = fsc_crossing(freq, flat, 0.143)
    assert not crossed2 and f2 == 0.5
    assert resolution_at(freq, flat, 0.143, 1.5) == pytest.approx(3.0)  # Nyquist bound


def test_conical_fsc_and_cfar_isotropic_vs_wedge():
    n, sigma = 32, 0.7
    s = _signal(n, 7, res_px=3.0)
    a, b = s + _noise(n, 8, sigma), s + _noise(n, 9, sigma)
    freq, dirs, curves = conical_fsc(a, a, n_directions=20)
    assert curves.shape == (20, n // 2 + 1)
    # identical maps: 1 wherever a cone holds voxels of a shell (low shells may hold none)
    assert torch.allclose(curves[:, 3:], torch.ones_like(curves[:, 3:]))
    assert ((curves[:, :3] == 0) | ((curves[:, :3] - 1).abs() < 1e-12)).all()
    iso = cfar(a, b)
    assert iso.cfar > 0.75  # measured 0.81 with these seeds (cone-to-cone noise keeps it < 1)
    # half maps that miss a ±40° wedge of information (signal only inside the tilt range)
    w = missing_wedge_mask((n, n, n), -40, 40, rfft=True, dtype=D)
    sw = torch.fft.irfftn(torch.fft.rfftn(s) * w, s=(n, n, n))
    aniso = cfar(sw + _noise(n, 8, sigma), sw + _noise(n, 9, sigma))
    assert aniso.cfar < 0.5 and aniso.cfar < iso.cfar / 3
    assert 0.0 <= aniso.cfar <= 1.0
    # the worst cone points into the missing wedge (elevation beyond the ±40° tilt range)
    worst = aniso.directions_zyx[int(aniso.areas.argmin())]
    assert abs(float(tilt_elevation_deg(worst, "y"))) > 50


def test_bad_inputs():
    a = torch.zeros(8, 8, 8)
    with pytest.raises(InputError):
        fsc(a, torch.zeros(8, 8, 9))
    with pytest.raises(InputError):
        fsc(torch.zeros(8, 8, 9), torch.zeros(8, 8, 9))
    bad = a.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        fsc(bad, a)
    with pytest.raises(InputError):
        fsc(a, a, mask=torch.ones(4, 4, 4))


def _write(path, data, voxel=2.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel
    return str(path)


def test_cli_fsc_json_png_and_errors(tmp_path, capsys):
    n = 32
    s = _signal(n, 10, res_px=8.0)
    h1 = _write(tmp_path / "h1.mrc", s + _noise(n, 11, 1.0))
    h2 = _write(tmp_path / "h2.mrc", s + _noise(n, 12, 1.0))
    png = tmp_path / "curve.png"
    assert main(["fsc", h1, h2, "--json", "--out", str(png), "--cfar"]) == 0
    out = json.loads(capsys.readouterr().out)
    freq, curve = fsc(np.asarray(mrcfile.read(h1)), np.asarray(mrcfile.read(h2)))
    assert out["resolution_angstrom"] == pytest.approx(resolution_at(freq, curve, 0.143, 2.0))
    assert out["nyquist_limited"] is False and 4.0 < out["resolution_angstrom"] < 40.0
    assert 0.0 < out["cfar"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # identical maps never cross: reported as Nyquist-limited, not as a measurement
    assert main(["fsc", h1, h1, "--threshold", "0.5"]) == 0
    assert "Nyquist-limited" in capsys.readouterr().out
    # bad input: one-line error, exit status 2
    other = _write(tmp_path / "small.mrc", np.zeros((16, 16, 16)))
    assert main(["fsc", h1, other]) == 2
    assert main(["fsc", h1, str(tmp_path / "missing.mrc")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "small.mrc" in err
