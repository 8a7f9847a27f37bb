"""fftfreq grids in cycles/pixel."""

from __future__ import annotations

import pytest
import torch

from cryoframe import InputError
from cryoframe.geometry.grids import fftfreq_grid, radial_frequency, rfft_shape


def test_full_and_rfft_grids_match_torch_fft_layout():
    g = fftfreq_grid((4, 6, 8))
    assert g.shape == (4, 6, 8, 3)
    assert torch.equal(g[:, 0, 0, 0], torch.fft.fftfreq(4))
    assert torch.equal(g[0, :, 0, 1], torch.fft.fftfreq(6))
    assert torch.equal(g[0, 0, :, 2], torch.fft.fftfreq(8))
    r = fftfreq_grid((4, 6, 8), rfft=True)
    assert r.shape[:-1] == rfft_shape((4, 6, 8)) == torch.fft.rfftn(torch.zeros(4, 6, 8)).shape
    assert torch.equal(r[0, 0, :, 2], torch.fft.rfftfreq(8))


def test_fftshift_puts_dc_at_centre():
    k = radial_frequency((5, 8), fftshift=True)
    assert k[5 // 2, 8 // 2] == 0
    assert torch.equal(torch.fft.ifftshift(k), radial_frequency((5, 8)))


def test_radial_frequency_values():
    k = radial_frequency((8, 8), rfft=True)
    assert k[0, 4] == pytest.approx(0.5)
    assert k[4, 4] == pytest.approx(0.5 * 2**0.5)


def test_bad_shape():
    with pytest.raises(InputError):
        fftfreq_grid((0, 4))


def test_read_only_big_endian_numpy_input_is_accepted_without_warnings(recwarn):
    import numpy as np

    from cryoframe.geometry.transforms import rotate_volumes

    a = np.zeros((8, 8, 8), dtype=">f4")  # as MRC files written on big-endian machines
    a[4, 4, 5] = 1.0
    a.flags.writeable = False  # as mrcfile's read-only memory maps
    out = rotate_volumes(a, torch.eye(3))
    assert out.dtype == torch.float32 and float(out[4, 4, 5]) == pytest.approx(1.0)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
