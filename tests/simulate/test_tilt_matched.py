"""The tilt-matched fast path has the spectra of the full tilt-series path (CTF and noise).

Same particles (classes, poses, offsets, per-tilt defoci) through the full path (tilt series with
a CTF per tilt, phase flipping, alignment, WBP, extraction) and through the fast path with and
without :func:`tilt_ctf_magnitude_rfft`; the unit-noise parts of the full path against
:func:`wbp_noise_psd_rfft`.
"""

import numpy as np
import pytest
import torch

from cryoframe.simulate import tilt_matched as tm


@pytest.fixture(scope="module")
def full_path():
    from cryoframe.simulate.config import DensityConfig, TomogramConfig
    from cryoframe.simulate.engine import build_densities, simulate_tomogram

    dens = build_densities(["2CG9", "3D2F", "1U6G"], DensityConfig(resolution_angstrom=10.0))
    cfg = TomogramConfig(shape_zyx_px=(64, 160, 160), ctf=True, noise_stage="tilt",
                         occupancy=0.2, min_separation_px=17.0)
    return dens, simulate_tomogram(dens, cfg, seed=4)


def _shells(vols: torch.Tensor) -> torch.Tensor:
    from cryoframe.geometry.grids import radial_frequency

    r = (radial_frequency((32, 32, 32), rfft=True) * 32).round().long().flatten()
    p = (torch.fft.rfftn(vols, dim=(-3, -2, -1)).abs() ** 2).mean(0).flatten().double()
    s = torch.bincount(r, p, minlength=17)[:17] / torch.bincount(r, minlength=17)[:17]
    return s / s[1:11].sum()


def test_signal_spectrum_matches_the_full_path_only_with_the_tilt_ctf(full_path):
    from cryoframe.simulate.fastpath import FastSubtomogramSimulator

    dens, res = full_path
    t = res.extraction.table
    assert len(t) >= 8
    R = t[[f"R{i}{j}" for i in range(3) for j in range(3)]].to_numpy().reshape(-1, 3, 3)
    off = t[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy()
    fast = FastSubtomogramSimulator(dens, 32, -60, 60, True).simulate(t["class_id"], R, off)
    defocus = torch.as_tensor(res.tilt_series.defocus_angstrom)[None].repeat(len(t), 1)
    ctf = tm.tilt_ctf_magnitude_rfft(32, tm.TiltGeometry(), defocus)
    matched = torch.fft.irfftn(torch.fft.rfftn(fast, dim=(-3, -2, -1)) * ctf, s=(32,) * 3,
                               dim=(-3, -2, -1))
    full = _shells(res.extraction.volumes.float())
    ratio_matched = (_shells(matched) / full)[1:9]
    ratio_plain = (_shells(fast) / full)[1:9]
    assert float((ratio_matched.log().abs()).max()) < np.log(1.5), ratio_matched
    assert float((ratio_plain.log().abs()).max()) > np.log(3.0), ratio_plain


def test_noise_power_spectrum_matches_the_reconstructed_tilt_noise(full_path):
    _, res = full_path
    noise = res.extraction.extra["noise"].float()
    measured = (torch.fft.rfftn(noise, dim=(-3, -2, -1)).abs() ** 2).mean(0)
    model = tm.wbp_noise_psd_rfft(32)
    r = np.corrcoef(measured.flatten().numpy(), model.flatten().numpy())[0, 1]
    assert r > 0.85
    drawn = tm.coloured_noise(64, model, torch.Generator().manual_seed(0))
    assert float((_shells(drawn) / _shells(noise))[1:15].log().abs().max()) < np.log(1.3)


def test_every_fourier_voxel_gets_the_tilt_whose_slice_holds_it():
    tilts = tm.TiltGeometry().tilts_deg()
    idx = tm.nearest_tilt_index_rfft(32, tilts)
    f = torch.fft.fftfreq(32, dtype=torch.float64)
    # k = (kz, 0, kx) with kz = kx·tan(θ) lies on the slice of tilt θ
    for t in (0, 10, 30, 50):
        theta = np.deg2rad(tilts[t])
        kx = 5
        kz = int(round(kx * np.tan(theta)))
        if abs(kz) < 16:
            got = tilts[int(idx[kz % 32, 0, kx])]
            assert abs(got - np.rad2deg(np.arctan2(f[kz % 32], f[kx]))) <= 1.0 + 1e-9
