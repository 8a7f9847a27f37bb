"""``average_subtomograms`` continues from its per-iteration checkpoint (issue 15)."""

from __future__ import annotations

import pytest
import torch

from cryoframe.baselines.fft_align import FFTAligner
from cryoframe.data import map_path
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import random_rotations
from cryoframe.geometry.transforms import rotate_volumes
from cryoframe.io.mrc import read_mrc
from cryoframe.tasks.average import average_subtomograms


class _Killed(Exception):
    pass


def _particles():
    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    ref = fourier_crop(d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16], 16)
    gen = torch.Generator().manual_seed(0)
    parts = rotate_volumes(ref, random_rotations(8, generator=gen))
    return parts + 0.3 * parts.std() * torch.randn(parts.shape, generator=gen)


def _run(parts, ckpt, progress=None):
    return average_subtomograms(parts, FFTAligner(step_deg=60, refine_steps=1),
                                max_iterations=3, min_iterations=3, checkpoint=ckpt,
                                random_pose_control=False, progress=progress)


def test_killed_average_resumes_to_the_same_result(tmp_path):
    parts = _particles()
    full = _run(parts, None)

    def die(entry):
        if entry["iteration"] == 2:
            raise _Killed

    ckpt = tmp_path / "average_checkpoint.pt"
    with pytest.raises(_Killed):
        _run(parts, ckpt, die)
    assert ckpt.exists()
    seen = []
    resumed = _run(parts, ckpt, lambda e: seen.append(e["iteration"]))
    assert seen == [2, 3]  # iteration 1 came from the checkpoint
    assert torch.allclose(resumed.map, full.map, atol=1e-5 * float(full.map.abs().max()))
    assert torch.allclose(resumed.rotations, full.rotations, atol=1e-5)
    # a checkpoint of other data is ignored, not misused
    other = _run(parts * 2, ckpt)
    assert len(other.history) == 3
