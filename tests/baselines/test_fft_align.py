"""Exhaustive FFT alignment with missing-wedge-constrained correlation."""

from __future__ import annotations

import pytest
import torch

from cryoframe.baselines.fft_align import FFTAligner, rotate_fourier_mask, wedge_mask
from cryoframe.data import map_path
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import geodesic_distance_deg, random_rotations, rotation_about
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc


def _map(n: int) -> torch.Tensor:
    """Asymmetric 1U6G template (10 Å/voxel, 56³) cropped to 32³, Fourier-cropped to n³."""
    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    d = d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16]
    return d if n == 32 else fourier_crop(d, n)


def _wedge_filter(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    return torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * w[..., : n // 2 + 1],
                            s=(n, n, n), dim=(-3, -2, -1))


def test_rotated_wedge_mask_follows_the_rotation():
    w = wedge_mask((16, 16, 16))
    r90 = rotation_about("y", torch.tensor(torch.pi / 2))  # turns the wedge about the tilt axis
    wr = rotate_fourier_mask(w, r90[None])[0]
    half = w[..., :9]
    # beam along z: the k_x axis lies in the zero-tilt central slice, the k_z axis in the wedge
    assert half[0, 0, 3] == 1 and half[3, 0, 0] == 0
    # ...and after a 90° turn about y it is the other way round
    assert wr[0, 0, 3] < 0.5 and wr[3, 0, 0] > 0.5


def test_recovers_known_rotation_and_shift_of_wedge_filtered_map():
    ref = _map(32)
    w = wedge_mask((32, 32, 32))
    rots = random_rotations(3, generator=torch.Generator().manual_seed(3))
    shifts = torch.tensor([[1.3, -2.2, 0.4], [-0.6, 0.0, 2.7], [2.0, 1.5, -1.1]])
    parts = _wedge_filter(shift_volumes_fourier(rotate_volumes(ref, rots), shifts), w)
    step = 30.0
    res = FFTAligner(step_deg=step, refine_steps=4, max_shift_px=6).align_to_reference(
        parts, ref, particle_mask=w)
    err = geodesic_distance_deg(res.rotations, rots)
    assert torch.all(err < step), err           # within the grid step (the contract)...
    assert torch.all(err < 6.0), err            # ...and the local refinement does much better
    assert torch.all((res.shifts_zyx_px - shifts).norm(dim=1) < 0.5)
    assert torch.all(res.scores > 0.8)


def test_pairs_with_both_wedges_and_local_range():
    ref = _map(16)
    w = wedge_mask((16, 16, 16))
    gen = torch.Generator().manual_seed(0)
    a = _wedge_filter(ref.expand(2, 16, 16, 16), w)
    rz, rx = rotation_about("z", torch.tensor(0.2)), rotation_about("x", torch.tensor(-0.1))
    rel = torch.stack([rz @ rx,
                       rotation_about("y", torch.tensor(-0.22))])
    t = torch.tensor([[1.0, 0.0, -1.5], [0.0, 2.0, 0.5]])
    b = _wedge_filter(shift_volumes_fourier(rotate_volumes(ref, rel), t), w)
    b = b + 0.05 * b.std() * torch.randn(b.shape, generator=gen)
    al = FFTAligner(step_deg=8.0, refine_steps=4, local_range_deg=15.0, max_shift_px=4)
    assert len(al.grid) < 200
    res = al.align_to_reference(b, a, particle_mask=w, reference_mask=w)
    assert torch.all(geodesic_distance_deg(res.rotations, rel) < 8.0)  # the grid step
    assert torch.all((res.shifts_zyx_px - t).norm(dim=1) < 0.6)


def test_bad_shapes_are_input_errors():
    from cryoframe import InputError

    with pytest.raises(InputError):
        FFTAligner().align_to_reference(torch.zeros(2, 16, 16, 16), torch.zeros(8, 8, 8))
