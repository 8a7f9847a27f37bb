"""Supervised metric pretraining: it can learn (one batch overfits), resumes exactly, and the
tilt-matched data it trains on has the spectra of the full tilt-series path."""

import json

import numpy as np
import pytest
import torch

from cryoframe.models import create_model
from cryoframe.models.pretrained import load_encoder_file
from cryoframe.simulate.class_bank import ClassBank
from cryoframe.train.labelled_source import SNRSchedule, TiltMatchedSource
from cryoframe.train.supervised import SupervisedModel


def _bank(n: int = 4, size: int = 24) -> ClassBank:
    z, y, x = torch.meshgrid(*[torch.arange(float(size)) - size // 2] * 3, indexing="ij")
    dens = []
    for k in range(n):
        a = 2.0 + k
        dens.append(torch.exp(-(z**2 / (4 * a) + y**2 / 6 + x**2 / 3))
                    + (k % 2) * torch.exp(-((z - 5) ** 2 + (x + 4) ** 2 + y**2) / 5))
    return ClassBank(dens, [f"c{k}" for k in range(n)])


def test_one_batch_overfits():
    torch.manual_seed(0)
    src = TiltMatchedSource(_bank(size=16), box_px=16, seed=0)
    batch = src.batch(0, 12, SNRSchedule(snr_start=1.0, snr_end=1.0, snr_high=2.0))
    model = SupervisedModel(create_model("cnn3d_cpu", width=4), 4, projection_dim=16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(batch["volumes"], batch["labels"]),
                                                 batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(batch["volumes"]).argmax(1) == batch["labels"]).float().mean()
    assert float(acc) == 1.0


def test_batches_are_a_function_of_seed_and_step():
    src = TiltMatchedSource(_bank(), seed=3)
    sched = SNRSchedule()
    a, b = src.batch(5, 4, sched), src.batch(5, 4, sched)
    assert torch.equal(a["volumes"], b["volumes"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(src.batch(6, 4, sched)["volumes"], a["volumes"])


def test_snr_curriculum_falls_to_its_end():
    s = SNRSchedule(snr_start=0.1, snr_end=0.01, curriculum_steps=100, clean_fraction=0.0)
    assert s.low(0) == pytest.approx(0.1) and s.low(100) == pytest.approx(0.01)
    snr = s.draw(2000, 100, torch.Generator().manual_seed(0))
    assert float(snr.min()) >= 0.01 - 1e-9 and float(snr.max()) <= s.snr_high + 1e-9


@pytest.mark.parametrize("stop", [2, 3])
def test_run_resumes_exactly(tmp_path, monkeypatch, stop):
    from cryoframe.train import supervised as sup

    monkeypatch.setattr(sup, "build_class_bank", lambda **kw: _bank())
    cfg = sup.SupervisedConfig(model="cnn3d_cpu", model_overrides={"width": 4}, steps=4,
                               batch_size=4, checkpoint_every=1, log_every=1, eval_every=0,
                               projection_dim=8)
    sup.run_supervised(cfg, tmp_path / "a", progress=lambda *_: None)
    sup.run_supervised(cfg, tmp_path / "b", max_steps=stop, progress=lambda *_: None)
    sup.run_supervised(cfg, tmp_path / "b", progress=lambda *_: None)
    ea, _ = load_encoder_file(tmp_path / "a" / "encoder.pt")
    eb, meta = load_encoder_file(tmp_path / "b" / "encoder.pt")
    for (k, va), (_, vb) in zip(ea.state_dict().items(), eb.state_dict().items(), strict=True):
        assert torch.allclose(va.float(), vb.float(), atol=1e-6), k
    assert meta["steps"] == 4
    assert json.loads((tmp_path / "b" / "config.json").read_text())["steps"] == 4


def test_resume_with_another_config_is_refused(tmp_path, monkeypatch):
    from cryoframe._errors import InputError
    from cryoframe.train import supervised as sup

    monkeypatch.setattr(sup, "build_class_bank", lambda **kw: _bank())
    cfg = sup.SupervisedConfig(model="cnn3d_cpu", model_overrides={"width": 4}, steps=2,
                               batch_size=4, checkpoint_every=1, eval_every=0, projection_dim=8)
    sup.run_supervised(cfg, tmp_path, progress=lambda *_: None)
    with pytest.raises(InputError, match="another configuration"):
        sup.run_supervised(cfg.model_copy(update={"lr": 1e-4}), tmp_path,
                           progress=lambda *_: None)
    # extending the run (more steps) is allowed
    sup.run_supervised(cfg.model_copy(update={"steps": 3}), tmp_path, progress=lambda *_: None)
    _, meta = load_encoder_file(tmp_path / "encoder.pt")
    assert meta["steps"] == 3


def test_encoder_file_of_the_wrong_kind_is_an_input_error(tmp_path):
    from cryoframe._errors import InputError

    p = tmp_path / "x.pt"
    torch.save({"something": np.arange(3).tolist()}, p)
    with pytest.raises(InputError, match="not an encoder"):
        load_encoder_file(p)
