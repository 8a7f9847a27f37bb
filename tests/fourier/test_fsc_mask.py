"""Phase-randomisation correction of masked FSCs: known answers on synthetic half maps."""

from __future__ import annotations

import pytest
import torch

from cryoframe import InputError
from cryoframe.fourier.fsc import fsc
from cryoframe.fourier.fsc_mask import masked_fsc_corrected, randomise_phases_beyond

N = 48


def _halves(seed: int = 0):
    """Twelve Gaussian blobs (σ 2.5 px, no power beyond about 0.2 cycles/px) shared by both
    halves, plus independent white noise per half; and the radius map about the centre.
    """
    g = torch.Generator().manual_seed(seed)
    ax = torch.arange(N, dtype=torch.float64) - N // 2
    zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
    pos = torch.stack([zz, yy, xx], -1)
    centres = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * 16
    sig = torch.exp(-((pos[None] - centres[:, None, None, None]) ** 2).sum(-1) / 12.5).sum(0)
    noise = 0.05 * torch.randn(2, N, N, N, generator=g, dtype=torch.float64)
    return sig + noise[0], sig + noise[1], pos.norm(dim=-1)


def test_random_phases_keep_amplitudes_and_kill_correlation_beyond_the_shell():
    a, b, _ = _halves()
    ra = randomise_phases_beyond(a, 10, torch.Generator().manual_seed(1))
    assert torch.allclose(torch.fft.rfftn(ra).abs(), torch.fft.rfftn(a).abs(), rtol=1e-6,
                          atol=1e-6 * float(torch.fft.rfftn(a).abs().max()))
    _, c = fsc(a, ra)
    assert float(c[:11].min()) > 0.999 and float(c[12:].abs().max()) < 0.15


def test_a_sharp_tight_mask_is_corrected_back_to_the_truth():
    a, b, r = _halves()
    sharp = (r < 8).to(torch.float64)         # cuts the particle: leakage to every shell
    res = masked_fsc_corrected(a, b, sharp, seed=0)
    hi = res.freq_cycles_per_px > 0.3         # no shared signal here: true FSC ≈ 0
    assert float(res.masked[hi].mean()) > 0.8  # the mask alone makes the halves correlate
    # corrected: back near zero (measured mean 0.05; 1 − FSC_n ≈ 0.05 amplifies the noise)
    assert abs(float(res.corrected[hi].mean())) < 0.1
    assert float(res.unmasked[hi].abs().max()) < 0.1
    # below the randomisation shell the masked curve is kept as it is
    s_r = res.randomised_from_shell
    assert 1 <= s_r and torch.equal(res.corrected[: s_r + 1], res.masked[: s_r + 1])
    # an all-ones mask needs no correction
    ones = masked_fsc_corrected(a, b, torch.ones_like(a))
    assert float((ones.corrected - ones.unmasked).abs().max()) < 0.1


def test_bad_mask_is_a_clear_error():
    a, b, _ = _halves()
    with pytest.raises(InputError, match="mask"):
        masked_fsc_corrected(a, b, torch.ones(8, 8, 8))


def test_cli_fsc_with_a_mask_reports_the_corrected_curve(tmp_path, capsys):
    import json

    import mrcfile
    import numpy as np

    from cryoframe.cli.main import main

    a, b, r = _halves()
    paths = []
    for name, v in (("h1", a), ("h2", b), ("mask", (r < 8).double()), ("map", a)):
        with mrcfile.new(tmp_path / f"{name}.mrc") as m:
            m.set_data(v.numpy().astype(np.float32))
            m.voxel_size = 2.0
        paths.append(str(tmp_path / f"{name}.mrc"))
    h1, h2, mask, a_map = paths
    assert main(["fsc", h1, h2, "--mask", mask, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    hi = np.asarray(out["freq_per_angstrom"]) * 2.0 > 0.3
    assert np.mean(np.asarray(out["fsc_masked_uncorrected"])[hi]) > 0.8
    assert abs(np.mean(np.asarray(out["fsc"])[hi])) < 0.1
    assert out["resolution_angstrom"] > 4.0  # the uncorrected curve never crosses 0.143
    # a map given as the mask: one clear error
    assert main(["fsc", h1, h2, "--mask", a_map]) == 2
    assert "map.mrc" in capsys.readouterr().err
