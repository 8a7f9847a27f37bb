import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.simulate.noise import add_noise, calibrated_noise, combine_signal_noise, measured_snr


@pytest.mark.parametrize("snr", [100.0, 0.1, 0.05, 0.03, 0.01])
def test_snr_exact_to_one_percent(snr):
    clean = torch.randn(8, 32, 32, 32) * torch.linspace(0.5, 3, 8)[:, None, None, None]
    noisy = add_noise(clean, snr, seed=3, indices=np.arange(8))
    got = measured_snr(clean, noisy)
    assert torch.all((got / snr - 1).abs() < 0.01), got


def test_raw_draw_snr_within_sampling_error():
    clean = torch.randn(4, 32, 32, 32)
    noisy = add_noise(clean, 0.05, seed=1, indices=[0, 1, 2, 3], exact=False)
    got = measured_snr(clean, noisy)
    assert torch.all((got / 0.05 - 1).abs() < 0.03)
    assert not torch.allclose(got, torch.full_like(got, 0.05), rtol=1e-6)


def test_noise_is_a_function_of_seed_index_snr():
    clean = torch.rand(3, 16, 16, 16)
    a = calibrated_noise(clean, 0.1, 7, [5, 6, 7])
    b = calibrated_noise(clean[[1]], 0.1, 7, [6])  # same volume key, computed alone
    assert torch.equal(a[1], b[0])
    c = calibrated_noise(clean, 0.1, 8, [5, 6, 7])
    d = calibrated_noise(clean, 0.05, 7, [5, 6, 7])
    # different seed or SNR: independent draws (correlation ~ 0)
    for other in (c, d):
        r = np.corrcoef(a[0].flatten(), other[0].flatten())[0, 1]
        assert abs(r) < 0.05


def test_combine_signal_noise_calibrates_tilt_noise():
    s = torch.randn(4, 32, 32, 32)
    n = 3.7 * torch.randn(4, 32, 32, 32)
    v = combine_signal_noise(s, n, 0.03)
    assert torch.allclose(measured_snr(s, v), torch.full((4,), 0.03, dtype=torch.float64),
                          rtol=1e-4)


def test_bad_snr_raises():
    with pytest.raises(InputError):
        add_noise(torch.zeros(1, 4, 4, 4), 0.0, 0, [0])
