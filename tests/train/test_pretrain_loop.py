"""NRCL pretraining loop: runs, logs, resumes exactly; views; k-NN monitor; data sources."""

import csv
import math
import os
import socket

import pytest
import torch

from cryoframe import InputError
from cryoframe.models.pretrained import load_pair_encoder_file
from cryoframe.train.augment3d import make_nrcl_views
from cryoframe.train.knn_monitor import knn_accuracy
from cryoframe.train.loop import PretrainConfig, run_pretrain
from cryoframe.train.subtomo_data import InMemorySource, iterate_batches, pretraining_densities

SMALL = dict(volume_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=4, head_hidden=32)


def _blobs(n=24, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, y, x = torch.meshgrid(*[torch.arange(size, dtype=torch.float32) - size // 2] * 3,
                             indexing="ij")
    vols, cls = [], []
    for i in range(n):
        c = i % 3
        centre = torch.randn(3, generator=g)
        r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2] * (1 + c)) ** 2
        vols.append(torch.exp(-r2 / (2 * (1.5 + c) ** 2)))
        cls.append(c)
    return InMemorySource(torch.stack(vols), cls)


def _cfg(**kw):
    base = dict(model="apt_pair_cpu", model_overrides=SMALL, steps=4, batch_size=4,
                lr=1e-3, warmup_steps=1, checkpoint_every=2, log_every=1, knn_every=2,
                proj_hidden=32, proj_dim=16, sinkhorn_iters=10, max_shift_px=1.0,
                progress=False, data=dict(knn_holdout=8))
    base.update(kw)
    return PretrainConfig(**base)


def test_views_follow_algorithm_2():
    src = _blobs(4)
    b = src.get([0, 1, 2, 3])
    v = make_nrcl_views(b["clean"], b["index"], step=3, seed=1, input_snrs=[0.5],
                        noisy_snr=0.01, max_rotation_deg=0.0, max_shift_px=0.0,
                        extra_noise_max=0.0, solarize_p=0.0, brightness=0.0)
    assert v["x"].shape == (4, 1, 16, 16, 16)
    assert torch.allclose(v["x"].flatten(1).std(1), torch.ones(4), atol=1e-4)
    # identity transform and no photometric change: X1 = X, X1_clean = clean (same affine map)
    assert torch.allclose(v["x1"], v["x"], atol=1e-5)
    clean_part = v["x1_clean"] - v["x1_clean"].mean()
    assert torch.corrcoef(torch.stack([clean_part.flatten(), v["x"].flatten()]))[0, 1] > 0.5
    noise_clean = (v["x1_clean"] - v["x"]).var()
    noise_noisy = (v["x1_clean"] - v["x1_noisy"]).var()
    assert noise_noisy > 10 * noise_clean
    again = make_nrcl_views(b["clean"], b["index"], step=3, seed=1, input_snrs=[0.5])
    assert torch.equal(again["x1"], make_nrcl_views(b["clean"], b["index"], step=3, seed=1,
                                                    input_snrs=[0.5])["x1"])


def test_batches_are_sharded_and_resumable():
    src = _blobs(20)
    a = [bt["index"].tolist() for _, (_, bt) in zip(range(6), iterate_batches(src, 4, seed=0))]
    b = [bt["index"].tolist()
         for _, (_, bt) in zip(range(3), iterate_batches(src, 4, 0, start_step=3))]
    assert a[3:] == b
    r0 = next(iterate_batches(src, 2, 0, rank=0, world_size=2))[1]["index"].tolist()
    r1 = next(iterate_batches(src, 2, 0, rank=1, world_size=2))[1]["index"].tolist()
    assert not set(r0) & set(r1)
    held = list(range(16, 20))
    seen = {i for _, (_, bt) in zip(range(8), iterate_batches(src, 4, 0, exclude=held))
            for i in bt["index"].tolist()}
    assert not seen & set(held)


def test_run_logs_and_resumes_exactly(tmp_path):
    src = _blobs()
    full = run_pretrain(_cfg(), tmp_path / "a", source=src)
    assert full["steps_done"] == 4 and math.isfinite(full["last"]["loss"])
    rows = list(csv.DictReader((tmp_path / "a" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for key in ["l_sym", "l_wass", "l_noise", "l_transform", "lr", "samples_per_s"]:
        assert all(math.isfinite(float(r[key])) for r in rows)
    assert rows[1]["knn_acc"] != ""
    part = run_pretrain(_cfg(stop_after_steps=2), tmp_path / "b", source=src)
    assert part["steps_done"] == 2
    rest = run_pretrain(_cfg(), tmp_path / "b", source=src)
    assert rest["start_step"] == 2 and rest["steps_done"] == 4
    enc_a, _ = load_pair_encoder_file(tmp_path / "a" / "encoder.pt")
    enc_b, meta = load_pair_encoder_file(tmp_path / "b" / "encoder.pt")
    assert meta["steps"] == 4
    for (name, pa), pb in zip(enc_a.state_dict().items(), enc_b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_knn_accuracy_separates_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 4, generator=g) + 5 * torch.eye(4)[i] for i in range(3)])
    y = torch.arange(3).repeat_interleave(20)
    assert knn_accuracy(x[0::2].numpy(), y[0::2].numpy(), x[1::2].numpy(), y[1::2].numpy()) > 95


def test_benchmark_classes_are_refused():
    with pytest.raises(InputError, match="benchmark"):
        pretraining_densities({}, ["1BXN"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from cryoframe.train.distributed import init_distributed, shutdown_distributed

    info = init_distributed("gloo")
    summary = run_pretrain(_cfg(steps=2, knn_every=0), out, source=_blobs(), dist_info=info)
    torch.save(summary["last"], os.path.join(out, f"last{rank}.pt"))
    shutdown_distributed(info)


def test_ddp_two_cpu_processes_gloo(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 2 and len(ck["rng"]) == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    # logged losses are all-reduced means: identical on both ranks
    assert torch.load(tmp_path / "last0.pt") == torch.load(tmp_path / "last1.pt")


def test_shipped_weights_loader_reads_encoder_files(tmp_path):
    from cryoframe.models import create_model
    from cryoframe.models.pretrained import load_pair_encoder_file
    from cryoframe.train.loop import save_encoder

    enc = create_model("apt_pair_cpu", **SMALL)
    save_encoder(tmp_path / "e.pt", enc, {"steps": 7})
    back, meta = load_pair_encoder_file(tmp_path / "e.pt")
    assert meta == {"steps": 7}
    x = torch.randn(2, 1, 16, 16, 16)
    enc.eval()
    with torch.no_grad():
        assert torch.equal(back.embed_single(x), enc.embed_single(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_pair_encoder_file(tmp_path / "bad.pt")


def test_shipped_weights_load_and_embed():
    from cryoframe.models.pretrained import load_pair_encoder, shipped_weights_path

    if not shipped_weights_path().exists():
        pytest.skip("source checkout without shipped weights")
    enc = load_pair_encoder()
    assert enc.volume_size == 32 and not enc.training
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        e = enc.embed_single(x)
        es = enc.embed_single(torch.roll(x, (3, -5, 7), dims=(-3, -2, -1)))
    assert e.shape == (2, 256) and torch.isfinite(e).all()
    assert ((es - e).norm(dim=1) / e.norm(dim=1)).max() < 1e-4  # trained weights stay invariant
