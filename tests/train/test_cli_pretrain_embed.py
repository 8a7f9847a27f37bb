"""`cryoframe pretrain` and `cryoframe embed` in-process, checked on their outputs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cryoframe.cli.main import main
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import write_star
from cryoframe.models.pretrained import load_pair_encoder_file
from cryoframe.train.loop import embed_for_inference


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pre")
    cfg = {"model": "apt_pair_cpu",
           "model_overrides": {"embed_dim": 32, "depth": 1, "num_heads": 4, "head_hidden": 32},
           "data": {"kind": "fastpath", "families": {}, "singles": ["3QM1", "3H84"],
                    "n_rows": 40, "knn_holdout": 8},
           "steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "proj_hidden": 32,
           "proj_dim": 16, "sinkhorn_iters": 10, "checkpoint_every": 1, "log_every": 1,
           "knn_every": 2, "progress": False}
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(d / "cfg.yaml"), "--out", str(d / "run")]) == 0
    return d


def test_pretrain_cli_writes_run(run_dir):
    run = run_dir / "run"
    rec = json.loads((run / "config.json").read_text())
    assert rec["config"]["steps"] == 2 and rec["config"]["lr"] == 1e-3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps_done"] == 2 and 0 <= summary["knn_acc"] <= 100
    rows = pd.read_csv(run / "metrics.csv")
    assert list(rows["step"]) == [1, 2] and np.isfinite(rows["loss"]).all()


def test_embed_cli_mrc_and_star(run_dir, tmp_path):
    weights = run_dir / "run" / "encoder.pt"
    g = torch.Generator().manual_seed(0)
    vols = torch.randn(3, 32, 32, 32, generator=g)
    names = []
    for i in range(3):
        write_mrc(tmp_path / f"sub{i}.mrc", vols[i].numpy(), voxel_size_angstrom=10.0)
        names.append(f"sub{i}.mrc")
    write_star(tmp_path / "parts.star", {"particles": pd.DataFrame({"rlnImageName": names})})
    out = tmp_path / "emb.npz"
    assert main(["embed", str(tmp_path / "parts.star"), "--out", str(out),
                 "--weights", str(weights)]) == 0
    emb = np.load(out)["embeddings"]
    enc, _ = load_pair_encoder_file(weights)
    ref = embed_for_inference(enc, vols).numpy()
    assert emb.shape == (3, 64)
    assert np.allclose(emb, ref, atol=1e-5)
    single = tmp_path / "one.npz"
    assert main(["embed", str(tmp_path / "sub1.mrc"), "--out", str(single),
                 "--weights", str(weights)]) == 0
    assert np.allclose(np.load(single)["embeddings"][0], ref[1], atol=1e-5)


def test_embed_cli_rejects_box_it_cannot_resample(run_dir, tmp_path):
    # 16³ at 1 Å spans 1.6 voxels at the encoder's 10 Å: refused, nothing written
    write_mrc(tmp_path / "small.mrc", np.zeros((16, 16, 16), np.float32), voxel_size_angstrom=1)
    code = main(["embed", str(tmp_path / "small.mrc"), "--out", str(tmp_path / "e.npz"),
                 "--weights", str(run_dir / "run" / "encoder.pt")])
    assert code == 2 and not (tmp_path / "e.npz").exists()


def test_embed_cli_store_and_store_source(run_dir, tmp_path):
    from cryoframe.simulate.config import SubtomogramDatasetConfig
    from cryoframe.simulate.engine import simulate_subtomograms
    from cryoframe.train.subtomo_data import StoreSource

    cfg = SubtomogramDatasetConfig(structures=["3QM1", "3H84"], n_per_class=4, path="fast",
                                   unit_size=4, seed=1)
    store = simulate_subtomograms(cfg, tmp_path / "s.zarr")
    src = StoreSource(store.path)
    assert len(src) == 8
    batch = src.get([5, 2])
    assert batch["clean"].shape == (2, 32, 32, 32)
    assert batch["class_id"].tolist() == [1, 0]
    assert torch.allclose(batch["rotation"] @ batch["rotation"].transpose(1, 2),
                          torch.eye(3).expand(2, 3, 3), atol=1e-5)
    out = tmp_path / "emb.npz"
    assert main(["embed", str(store.path), "--out", str(out),
                 "--weights", str(run_dir / "run" / "encoder.pt")]) == 0
    data = np.load(out)
    assert data["embeddings"].shape == (8, 64)
    assert data["class_id"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
