"""Supervised metric pretraining of a subtomogram encoder on simulated class labels.

Labels are free in simulation (TomoTwin trains this way and transfers to unseen proteins). The
encoder (any registry backbone) is followed by a small projector and a normalised-softmax
classifier with an additive cosine margin (:class:`~cryoframe.models.heads.CosineClassifier`)
over the classes of a :class:`~cryoframe.simulate.class_bank.ClassBank`; batches come from
:class:`~cryoframe.train.labelled_source.TiltMatchedSource` (full-path-like CTF and noise, SNR
curriculum) and, for a ``fullpath_fraction`` of each batch, from boxes of the full tilt-series
path itself (:class:`~cryoframe.train.fullpath_bank.FullPathBankSource`). The features a user gets are the backbone's pooled features, before the projector.

A run is extended by resuming it with a larger ``steps`` (the cosine schedule then continues
towards the new end), optionally with crowded boxes (``neighbours_mean``) or a full-path share;
every other training setting must match the checkpoint's.

Durable: every ``checkpoint_every`` steps the whole state (encoder, projector, classifier,
optimiser, step) is written atomically to ``checkpoint.pt`` and the encoder alone to
``encoder.pt``; batches are functions of ``(data seed, step)`` and the torch RNG is reseeded per
step, so a run killed and resumed continues exactly. ``log.csv`` holds one row per logged step;
``dev.csv`` the development probe (unseen classes, :data:`~cryoframe.simulate.class_bank.DEV_MAPS`)
used for model selection: SUB5 is never looked at during training.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch import nn

from cryoframe._atomic import atomic_path, atomic_write_text
from cryoframe._errors import InputError
from cryoframe.models import create_model
from cryoframe.models.heads import CosineClassifier
from cryoframe.models.pretrained import save_encoder_file
from cryoframe.simulate.class_bank import build_class_bank, build_dev_bank
from cryoframe.train.fullpath_bank import FullPathBankSource, build_fullpath_bank_store
from cryoframe.train.labelled_source import SNRSchedule, TiltMatchedSource
from cryoframe.train.schedules import warmup_cosine

__all__ = ["fullpath_store_path", "SupervisedConfig", "SupervisedModel", "encoder_features",
           "dev_probe_data", "dev_probe", "run_supervised"]


class SupervisedConfig(BaseModel):
    """Configuration of :func:`run_supervised` (frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "cnn3d_cpu"
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    n_assemblies: int = Field(64, ge=0)
    seed: int = 0
    batch_size: PositiveInt = 32
    steps: PositiveInt = 20000
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(200, ge=0)
    projection_dim: PositiveInt = 128
    cos_scale: float = Field(16.0, gt=0)
    cos_margin: float = Field(0.1, ge=0)
    snr_start: float = Field(0.1, gt=0)
    snr_end: float = Field(0.005, gt=0)
    snr_high: float = Field(0.5, gt=0)
    curriculum_steps: PositiveInt = 3000
    clean_fraction: float = Field(0.15, ge=0, le=1)
    neighbours_mean: float = Field(0.0, ge=0)
    fullpath_fraction: float = Field(0.0, ge=0, le=1)
    fullpath_per_class: int = Field(100, ge=1)
    fullpath_seed: int = 11
    checkpoint_every: PositiveInt = 200
    log_every: PositiveInt = 20
    eval_every: int = Field(1000, ge=0)
    dev_snr: float = Field(0.05, gt=0)
    dev_per_class: PositiveInt = 80


def encoder_features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`(B, 1, L, L, L)` → `(B, F)` pooled backbone features of any registry encoder."""
    return encoder.forward_head(encoder.forward_features(x), pre_logits=True)


class SupervisedModel(nn.Module):
    """Encoder → projector (``F → 2P → P``) → cosine classifier."""

    def __init__(self, encoder: nn.Module, n_classes: int, projection_dim: int = 128,
                 scale: float = 16.0, margin: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        f = int(encoder.num_features)
        self.projector = nn.Sequential(nn.Linear(f, 2 * projection_dim),
                                       nn.BatchNorm1d(2 * projection_dim), nn.ReLU(inplace=True),
                                       nn.Linear(2 * projection_dim, projection_dim))
        self.classifier = CosineClassifier(projection_dim, n_classes, scale, margin)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, L, L, L)` standardised volumes → `(B, n_classes)` logits."""
        return self.classifier(self.projector(encoder_features(self.encoder, x[:, None])), labels)


def dev_probe_data(per_class: int, snr: float, seed: int = 1234,
                   neighbours_mean: float = 0.0) -> dict:
    """Development set on unseen classes: an SNR-100 pool and a target pool at ``snr``."""
    src = TiltMatchedSource(build_dev_bank(), seed=seed, neighbours_mean=neighbours_mean)
    n = per_class * len(src.bank)
    labels = torch.arange(len(src.bank)).repeat_interleave(per_class)
    gen = src.generator(0, 7)
    from cryoframe.simulate.noise import combine_signal_noise
    from cryoframe.train.augment3d import standardize

    out = {}
    for name, s in (("clean", 100.0), ("target", snr)):
        sig, noi = src.signal_noise(labels, gen)
        if neighbours_mean > 0:
            sig = src.add_neighbours(sig, gen)
        out[name] = standardize(combine_signal_noise(sig, noi, s))
    out["labels"] = labels.numpy()
    out["n"] = n
    return out


@torch.no_grad()
def _embed(encoder: nn.Module, vols: torch.Tensor, batch: int = 64) -> np.ndarray:
    was = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    out = [encoder_features(encoder, vols[i:i + batch][:, None].to(dev)).float().cpu()
           for i in range(0, len(vols), batch)]
    encoder.train(was)
    return torch.cat(out).numpy()


def dev_probe(encoder: nn.Module, data: dict, seed: int = 0) -> dict[str, float]:
    """Linear probe + 5-NN on the development classes (train: clean pool + half the target)."""
    from cryoframe.tasks.classify import linear_probe
    from cryoframe.train.knn_monitor import knn_accuracy

    y = data["labels"]
    e_clean, e_t = _embed(encoder, data["clean"]), _embed(encoder, data["target"])
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    tr, te = idx[: len(y) // 2], idx[len(y) // 2:]
    xtr, ytr = np.concatenate([e_clean, e_t[tr]]), np.concatenate([y, y[tr]])
    probe = linear_probe(xtr, ytr, seed=seed)
    return {"dev_linear": float((probe.predict(e_t[te]) == y[te]).mean() * 100),
            "dev_knn": knn_accuracy(xtr, ytr, e_t[te], y[te])}


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _trim_csv(path: Path, max_step: int) -> None:
    """Drop rows logged after the checkpoint being resumed (they will be logged again)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= max_step]
    if not rows:
        path.unlink()
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _param_groups(model: nn.Module, wd: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def fullpath_store_path(cfg: SupervisedConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the full-path bank store of ``cfg`` lives (``$CRYOFRAME_CACHE``, ~/.cache/cryoframe)."""
    root = Path(cache_dir) if cache_dir is not None else \
        Path(os.environ.get("CRYOFRAME_CACHE", "~/.cache/cryoframe")).expanduser()
    return root / f"bank_full_a{cfg.n_assemblies}_n{cfg.fullpath_per_class}_seed{cfg.fullpath_seed}.zarr"


def run_supervised(cfg: SupervisedConfig, out_dir: str | Path, max_steps: int | None = None,
                   progress=print, device: str = "cpu", max_wall_s: float | None = None,
                   cache_dir: str | Path | None = None) -> Path:
    """Train (or resume) in ``out_dir``; stops at ``cfg.steps`` or after ``max_steps`` more steps.

    ``device`` runs the network there (batches are simulated on the CPU); ``max_wall_s`` stops
    after the first checkpoint past that wall time of training (set-up not counted). With
    ``cfg.fullpath_fraction > 0`` that share of every batch comes from full tilt-series path
    boxes of the same classes (:mod:`cryoframe.train.fullpath_bank`), simulated once into
    ``cache_dir`` (:func:`fullpath_store_path`) and resumed there if interrupted. Returns the
    path of ``encoder.pt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    bank = build_class_bank(n_assemblies=cfg.n_assemblies, seed=cfg.seed)
    source = TiltMatchedSource(bank, seed=cfg.seed, neighbours_mean=cfg.neighbours_mean)
    schedule = SNRSchedule(cfg.snr_start, cfg.snr_end, cfg.snr_high, cfg.curriculum_steps,
                           cfg.clean_fraction)
    torch.manual_seed(cfg.seed)
    encoder = create_model(cfg.model, **cfg.model_overrides)
    model = SupervisedModel(encoder, len(bank), cfg.projection_dim, cfg.cos_scale, cfg.cos_margin)
    model.to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    start = 0
    if ckpt_path.exists():
        blob = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = SupervisedConfig(**json.loads(blob["config"]))
        free = {"steps", "checkpoint_every", "log_every", "eval_every", "neighbours_mean",
                "fullpath_fraction", "fullpath_per_class", "fullpath_seed"}
        if saved.model_dump(exclude=free) != cfg.model_dump(exclude=free):
            raise InputError("checkpoint was written with another configuration", file=ckpt_path,
                             field="config", expected=f"{saved.model_dump(exclude=free)} "
                             "(only steps, neighbours_mean, the full-path share and the logging intervals may change "
                             "on resume)")
        model.load_state_dict({k: v.to(device) for k, v in blob["model"].items()})
        opt.load_state_dict(blob["optimizer"])
        start = int(blob["step"])
        progress(f"resumed from step {start}")
    for name in ("log.csv", "dev.csv"):
        _trim_csv(out / name, start)
    atomic_write_text(out / "config.json", cfg.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / "classes.json", json.dumps(bank.names, indent=1) + "\n")
    full = None
    if cfg.fullpath_fraction > 0:
        store_path = fullpath_store_path(cfg, cache_dir)
        progress(f"full-path bank store {store_path}")
        full = FullPathBankSource(build_fullpath_bank_store(
            bank, store_path, cfg.fullpath_per_class, cfg.fullpath_seed,
            progress=lambda d, t: progress(f"full-path store: {d}/{t} units")
            if d % 10 == 0 or d == t else None), seed=cfg.seed)
        if full.class_names != bank.names:
            raise InputError("full-path store holds other classes than the class bank",
                             file=store_path, field="class_names", expected=str(bank.names[:3]))
    n_full = round(cfg.fullpath_fraction * cfg.batch_size)
    dev = dev_probe_data(cfg.dev_per_class, cfg.dev_snr) if cfg.eval_every else None
    end = cfg.steps if max_steps is None else min(cfg.steps, start + max_steps)
    model.train()
    t_start = time.perf_counter()
    t_last, n_seen, loss_acc, hit_acc = time.perf_counter(), 0, 0.0, 0.0
    step = start
    for step in range(start, end):
        lr = warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        batch = source.batch(step, cfg.batch_size - n_full, schedule)
        vols, labels = batch["volumes"], batch["labels"]
        if n_full:
            fb = full.batch(step, n_full, schedule.draw(n_full, step, source.generator(step, 2000)))
            vols, labels = torch.cat([vols, fb["volumes"]]), torch.cat([labels, fb["labels"]])
        vols, labels = vols.to(device), labels.to(device)
        logits = model(vols, labels)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_acc += loss.item()
        hit_acc += float((logits.argmax(1) == labels).float().mean())
        n_seen += 1
        done = step + 1
        if done % cfg.log_every == 0:
            dt = time.perf_counter() - t_last
            row = {"step": done, "loss": round(loss_acc / n_seen, 5),
                   "train_acc": round(100 * hit_acc / n_seen, 2), "lr": f"{lr:.3e}",
                   "snr_low": round(schedule.low(step), 5),
                   "samples_per_s": round(n_seen * cfg.batch_size / dt, 2),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _append_csv(out / "log.csv", row)
            progress(f"step {done}/{cfg.steps} loss {row['loss']} acc {row['train_acc']} % "
                     f"snr_low {row['snr_low']} {row['samples_per_s']} samples/s")
            t_last, n_seen, loss_acc, hit_acc = time.perf_counter(), 0, 0.0, 0.0
        over_time = max_wall_s is not None and time.perf_counter() - t_start > max_wall_s
        if done % cfg.checkpoint_every == 0 or done == end or over_time:
            _save(out, model, opt, cfg, done)
        if over_time:
            progress(f"wall-time limit reached at step {done}")
            break
        if dev is not None and (done % cfg.eval_every == 0 or done == end):
            res = dev_probe(model.encoder, dev)
            _append_csv(out / "dev.csv", {"step": done, **{k: round(v, 2) for k, v in res.items()}})
            progress(f"step {done}: dev probe (unseen classes, SNR {cfg.dev_snr:g}) {res}")
            t_last = time.perf_counter()
    return out / "encoder.pt"


def source_voxel_size_angstrom() -> float:
    """Voxel size (Å) of the training subtomograms (that of the tilt geometry, 10 Å)."""
    from cryoframe.simulate.tilt_matched import TiltGeometry

    return float(TiltGeometry().voxel_size_angstrom)


def _save(out: Path, model: SupervisedModel, opt, cfg: SupervisedConfig, step: int) -> None:
    with atomic_path(out / "checkpoint.pt") as tmp:
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(), "step": step,
                    "config": cfg.model_dump_json()}, tmp)
    save_encoder_file(out / "encoder.pt", model.encoder, cfg.model, cfg.model_overrides,
                      {"objective": "supervised cosine-margin CE", "steps": step,
                       "samples": step * cfg.batch_size, "seed": cfg.seed,
                       "n_classes": len(model.classifier.weight),
                       "voxel_size_angstrom": source_voxel_size_angstrom(),
                       "box_px": int(getattr(model.encoder, "volume_size", 32))})
