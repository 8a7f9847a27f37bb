"""Every volume routine works for odd and even boxes (issue 15: 91³ averaging failed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoframe.baselines.fft_align import FFTAligner, rotate_fourier_mask, wedge_mask
from cryoframe.data import map_path
from cryoframe.fourier.contrast import contrast_relation
from cryoframe.fourier.filters import fourier_crop, fourier_pad
from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.geometry.rotations import geodesic_distance_deg, random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc
from cryoframe.tasks.average import (
    average_subtomograms,
    fsc_filter,
    soft_sphere_mask,
    weighted_average,
)


def _map(n: int) -> torch.Tensor:
    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    h = max(16, (n + 1) // 2)
    d = d[c - h:c + h, c - h:c + h, c - h:c + h]
    return fourier_crop(d, n) if n <= d.shape[0] else fourier_pad(d, n)


@pytest.mark.parametrize("n", [16, 17])
def test_basic_volume_routines(n):
    v = _map(n)
    # integer Fourier shift equals a roll
    s = shift_volumes_fourier(v[None], torch.tensor([[2.0, -1.0, 3.0]]))[0]
    assert torch.allclose(s, torch.roll(v, (2, -1, 3), (0, 1, 2)), atol=1e-3 * float(v.abs().max()))
    # identity rotation
    tol = 1e-4 * float(v.abs().max())
    assert torch.allclose(rotate_volumes(v, torch.eye(3)[None])[0], v, atol=tol)
    # FSC of a map with itself is 1, resolution Nyquist
    freq, curve = fsc(v, v)
    assert len(curve) == n // 2 + 1
    assert torch.allclose(curve[1:].float(), torch.ones(n // 2), atol=1e-5)
    assert resolution_at(freq, curve, 0.143, 10.0) == pytest.approx(10.0 * n / (n // 2), rel=0.2)
    # FSC filter with FSC = 1 leaves the map unchanged
    # FSC = 1 in every shell: only the cube's corners beyond the last shell are removed
    from cryoframe.geometry.grids import radial_frequency

    inside = torch.round(radial_frequency((n, n, n), rfft=True) * n) <= n // 2
    sphere_v = torch.fft.irfftn(torch.fft.rfftn(v) * inside, s=(n, n, n))
    assert torch.allclose(fsc_filter(v, freq, curve.float()), sphere_v, atol=tol)
    m = soft_sphere_mask(n, 0.4 * n)
    assert m[n // 2, n // 2, n // 2] == 1 and m.shape == (n, n, n)
    # crop/pad round trip (an even box's Nyquist plane is not split by the pad: use a map
    # without energy there)
    vb = fourier_pad(fourier_crop(v, n - 1), n) if n % 2 == 0 else v
    assert torch.allclose(fourier_crop(fourier_pad(vb, n + 5), n), vb, atol=tol)
    # the wedge and its rotation have the rfft shape
    w = wedge_mask((n, n, n))
    assert rotate_fourier_mask(w, torch.eye(3)[None]).shape == (1, n, n, n // 2 + 1)
    # averaging particles at their true poses gives the map back (no wedge)
    rots = random_rotations(3, generator=torch.Generator().manual_seed(0))
    parts = rotate_volumes(v, rots, order="cubic")
    avg, _ = weighted_average(parts, rots, torch.zeros(3, 3), order="cubic", regularisation=0.0)
    inner = soft_sphere_mask(n, 0.3 * n) > 0.5
    cc = np.corrcoef(avg[inner].numpy(), v[inner].numpy())[0, 1]
    assert cc > 0.95
    assert contrast_relation(parts, v).sign == 1


@pytest.mark.parametrize("n", [32, 34, 35])
def test_fft_aligner_odd_and_even_coarse_boxes(n):
    """n // 2 is the coarse box: 16 (even), 17 (odd: failed before), 17 from an odd n."""
    ref = _map(n)
    rots = random_rotations(2, generator=torch.Generator().manual_seed(3))
    shifts = torch.tensor([[1.0, -1.5, 0.5], [0.0, 2.0, -1.0]])
    parts = shift_volumes_fourier(rotate_volumes(ref, rots), shifts)
    res = FFTAligner(step_deg=30, refine_steps=3).align_to_reference(parts, ref)
    assert torch.all(geodesic_distance_deg(res.rotations, rots) < 10.0)
    assert torch.all((res.shifts_zyx_px - shifts).norm(dim=1) < 0.75)


def test_average_on_an_odd_coarse_box():
    """Five 34³ subtomograms (coarse search box 17): raised 'size of tensor a (16) must match (17)'
    before the fix (91³ → 45 in the issue)."""
    n = 34
    ref = _map(n)
    rots = random_rotations(5, generator=torch.Generator().manual_seed(1))
    parts = rotate_volumes(ref, rots)
    res = average_subtomograms(parts, FFTAligner(step_deg=60, refine_steps=1),
                               max_iterations=1, min_iterations=1, random_pose_control=False)
    assert res.map.shape == (n, n, n) and torch.isfinite(res.map).all()
