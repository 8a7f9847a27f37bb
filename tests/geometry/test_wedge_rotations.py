"""The wedge-preserving rotations are exact 180° turns about the box centre and keep the wedge."""

import pytest
import torch

from cryoframe.fourier.wedge import missing_wedge_mask
from cryoframe.geometry.transforms import rotate_volumes, wedge_preserving_rotations


@pytest.mark.parametrize("n", [16, 15])
def test_they_equal_180_degree_rotations_about_the_centre(n):
    g = torch.Generator().manual_seed(0)
    vol = torch.randn(1, n, n, n, generator=g)
    mats = [torch.diag(torch.tensor(d)) for d in ([1.0, -1, -1], [-1.0, 1, -1], [-1.0, -1, 1])]
    views = wedge_preserving_rotations(vol)
    assert torch.equal(views[0], vol)
    for R, v in zip(mats, views[1:], strict=True):
        ref = rotate_volumes(vol, R[None].float())
        # for even n, plane 0 has no partner inside the box: rotate_volumes leaves it empty,
        # the index permutation wraps it circularly
        inner = (..., slice(1, None), slice(1, None), slice(1, None))
        assert torch.allclose(v[inner], ref[inner], atol=1e-5)


def test_the_missing_wedge_maps_onto_itself():
    m = missing_wedge_mask((16, 16, 16), -60, 60, "y")
    for v in wedge_preserving_rotations(m[None])[1:]:
        assert torch.equal(v[0], m)
