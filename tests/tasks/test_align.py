"""Learned alignment: head fine-tuning, prediction convention, refinement from a prediction."""

from __future__ import annotations

import pytest
import torch

from cryoframe import InputError
from cryoframe.baselines.fft_align import AlignResult, FFTAligner, wedge_mask
from cryoframe.data import map_path
from cryoframe.geometry.rotations import axis_angle_to_matrix, geodesic_distance_deg
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.io.mrc import read_mrc
from cryoframe.models import create_model
from cryoframe.models.pretrained import load_pair_encoder
from cryoframe.tasks.align import LearnedAligner, finetune_transform_head


def _map() -> torch.Tensor:
    d = torch.as_tensor(read_mrc(map_path("1U6G")).data, dtype=torch.float32)
    c = d.shape[0] // 2
    return d[c - 16:c + 16, c - 16:c + 16, c - 16:c + 16]


def _tiny_encoder():
    return create_model("apt_pair_cpu", embed_dim=32, depth=1, num_heads=2, head_hidden=32)


def test_finetune_updates_only_the_head():
    torch.manual_seed(0)
    enc = _tiny_encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items() if not k.startswith("transform")}
    ref = _map()
    vols = torch.stack([ref, ref.flip(-1), ref.transpose(-1, -3), ref.roll(3, -2)])
    head0 = {k: v.clone() for k, v in enc.transform_head.state_dict().items()}
    hist = finetune_transform_head(enc, vols, epochs=2, lr=1e-2, seed=0,
                                   particle_mask=wedge_mask((32, 32, 32)))
    assert len(hist) == 2 and all(h == h and 0 < h < 50 for h in hist)
    after = enc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(head0[k], v) for k, v in enc.transform_head.state_dict().items())
    assert not any(p.requires_grad for p in enc.parameters())


class _StubEncoder:
    """Stands in for the pair encoder: 'predicts' fixed transforms, records its inputs."""

    volume_size = 32

    def __init__(self, rot, shift):
        self.rot, self.shift = rot, shift

    def eval(self):
        return self

    def transform(self, x1, x2):
        assert x1.shape[1] == 1 and x2.shape[1] == 1
        b = x1.shape[0]
        return {"rotation": self.rot[:b], "shift_zyx_px": self.shift[:b]}


def test_refinement_from_a_rough_prediction_recovers_the_pose():
    ref = _map()
    w = wedge_mask((32, 32, 32))
    axis = torch.tensor([[0.3, 0.5, 0.8], [1.0, -0.2, 0.1]])
    true = axis_angle_to_matrix(axis, torch.tensor([0.2, -0.25]))      # 11.5°, 14.3°
    t = torch.tensor([[1.2, -0.5, 2.0], [0.0, 1.5, -1.0]])
    parts = shift_volumes_fourier(rotate_volumes(ref, true), t)
    parts = torch.fft.irfftn(torch.fft.rfftn(parts, dim=(-3, -2, -1)) * w[..., :17],
                             s=(32, 32, 32), dim=(-3, -2, -1))
    # a prediction 6° off the truth
    off = axis_angle_to_matrix(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                               torch.tensor([0.105, 0.105]))
    stub = _StubEncoder(true @ off, t + 0.7)
    raw = LearnedAligner(stub, refine=False).align_to_reference(parts, ref)
    assert torch.allclose(raw.rotations, true @ off)
    res = LearnedAligner(stub, refine=True, refine_steps=4).align_to_reference(
        parts, ref, particle_mask=w)
    assert isinstance(res, AlignResult)
    err = geodesic_distance_deg(res.rotations, true)
    assert torch.all(err < 3.0), err
    assert torch.all((res.shifts_zyx_px - t).norm(dim=1) < 0.5)
    # the same start through the FFT aligner directly gives the same answer
    direct = FFTAligner(step_deg=12, refine_steps=4, refine_start_deg=4).align_to_reference(
        parts, ref, particle_mask=w, init_rotations=true @ off)
    torch.testing.assert_close(direct.rotations, res.rotations)


def test_checkpoint_round_trip(tmp_path):
    enc = _tiny_encoder()
    path = tmp_path / "enc.pt"
    torch.save({"config": enc.config, "state_dict": enc.state_dict()}, path)
    enc2 = load_pair_encoder(path)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        enc.eval()
        torch.testing.assert_close(enc.embed(x, x), enc2.embed(x, x))
    torch.save({"weights": 1}, tmp_path / "bad.pt")
    with pytest.raises(InputError):
        load_pair_encoder(tmp_path / "bad.pt")
