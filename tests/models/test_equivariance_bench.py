"""The equivariance suite's figures, on a tiny budget (full quick run is marked slow)."""

import pytest
import torch

from cryoframe.bench import equivariance as eq
from cryoframe.models import create_model


def test_bench_helpers_separate_apt_from_plain_vit():
    torch.manual_seed(0)
    small = dict(volume_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=4)
    apt = create_model("apt_vit_cpu", **small).eval()
    vit = create_model("vit_cpu", **small).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    shifts = [(1, 2, 3), (-3, 0, 5)]
    assert eq.shift_error(apt, x, shifts) < 1e-5
    assert eq.shift_error(vit, x, shifts) > 1e-2
    assert eq.rot90_select_error(apt, x, 4) < 1e-4
    gen = torch.Generator().manual_seed(0)
    assert eq.vit_rot90_error(vit, x, 4, 8, eq.ROTATIONS[:1], gen) > 1e-2


@pytest.mark.slow
def test_quick_suite_passes(tmp_path):
    result = eq.run(quick=True, out_dir=tmp_path, seed=0)
    assert result.details["passes"]
    assert (tmp_path / "equivariance.png").stat().st_size > 1000
