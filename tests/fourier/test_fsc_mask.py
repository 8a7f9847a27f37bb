"""Phase-randomisation correction of masked FSCs (recon.halves.masked_fsc_corrected, used by
reconstructions and by ``cryoframe fsc --mask``): known answers on synthetic half maps."""

from __future__ import annotations

import torch

from cryoframe.fourier.fsc import fsc
from cryoframe.recon.halves import masked_fsc_corrected

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


def test_a_sharp_tight_mask_is_corrected_back_to_the_truth():
    a, b, r = _halves()
    sharp = (r < 8).to(torch.float64)         # cuts the particle: leakage to every shell
    freq, unmasked = fsc(a, b)
    _, masked = fsc(a, b, mask=sharp)
    corrected = torch.as_tensor(masked_fsc_corrected(a, b, sharp, unmasked.numpy(), seed=0))
    hi = freq > 0.3                           # no shared signal here: true FSC ≈ 0
    assert float(unmasked[hi].abs().max()) < 0.1
    assert float(masked[hi].mean()) > 0.8     # the mask alone makes the halves correlate
    # corrected: back near zero (1 − FSC_n is small here and amplifies the noise)
    assert abs(float(corrected[hi].mean())) < 0.1, corrected
    # an all-ones mask needs no correction
    ones = masked_fsc_corrected(a, b, torch.ones_like(a), unmasked.numpy())
    assert float((torch.as_tensor(ones) - unmasked).abs().max()) < 0.1


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
