"""NRCL pretraining run: config, data, optimisation, checkpoints with exact resume, logs.

``run_pretrain(cfg)`` builds the pair encoder and :class:`~cryoframe.train.nrcl.NRCL`, streams
batches from a source (:mod:`cryoframe.train.subtomo_data`: CryoEngine fast path on the fly, or
a CryoEngine store), makes the NRCL views, and trains with AdamW (weight decay 1e-4) under a
linear warm-up + cosine schedule whose peak is ``√(batch/512)·base_lr`` (000 §3.1; the paper's
``base_lr = 1e-5`` is far too small for a CPU-sized run, so it is a config value and the run
record says which one was used). Every ``checkpoint_every`` steps rank 0 writes
``checkpoint.pt`` (model incl. momentum networks, optimiser, step, RNG states) and
``encoder.pt`` (pair encoder config + weights, the format of the shipped weights); a restarted
run with the same config resumes from ``checkpoint.pt`` and produces the same parameters as an
uninterrupted one (data order and views are functions of ``(seed, step)``).
Metrics go to ``metrics.csv`` (one row per logged step) with a rich progress bar.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt

from cryoframe._atomic import atomic_write_text
from cryoframe._config import FrozenConfig, load_config
from cryoframe._errors import InputError
from cryoframe._record import write_run_record
from cryoframe.geometry.transforms import wedge_preserving_rotations
from cryoframe.models import create_model
from cryoframe.models.pretrained import save_weights
from cryoframe.simulate.noise import add_noise
from cryoframe.train.augment3d import make_nrcl_views, standardize
from cryoframe.train.checkpoint import (
    load_state,
    read_metrics_csv,
    rng_state,
    save_state,
    set_rng_state,
    write_metrics_csv,
)
from cryoframe.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from cryoframe.train.knn_monitor import KNNMonitor
from cryoframe.train.nrcl import NRCL
from cryoframe.train.schedules import scaled_lr, warmup_cosine
from cryoframe.train.subtomo_data import (
    FastPathSource,
    StoreSource,
    SubtomoSource,
    iterate_batches,
    pretraining_densities,
)

__all__ = ["DataConfig", "PretrainConfig", "run_pretrain", "load_pretrain_config",
           "build_source", "save_encoder", "pretrain_throughput"]


class DataConfig(FrozenConfig):
    """Where pretraining subtomograms come from."""

    kind: Literal["fastpath", "store"] = "fastpath"
    store_path: str | None = None
    families: dict[str, PositiveInt] = Field(
        default_factory=lambda: {"3J9I": 8, "4V4R_30S": 8})
    singles: list[str] = Field(default_factory=lambda: ["1U6G", "2CG9", "3D2F", "3H84", "3QM1"])
    n_rows: PositiveInt = 200_000
    seed: int = 0
    offset_max_px: float = Field(1.0, ge=0)
    knn_holdout: int = Field(210, ge=0)
    knn_snr: PositiveFloat = 0.1


class PretrainConfig(FrozenConfig):
    """Everything a pretraining run depends on (written to ``config.json`` of the run)."""

    model: str = "apt_pair_cpu"
    model_overrides: dict[str, int | float | str] = Field(default_factory=dict)
    data: DataConfig = DataConfig()
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 32
    base_lr: PositiveFloat = 1e-5
    lr: PositiveFloat | None = None  # peak LR; None → √(batch·world/512)·base_lr
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.99, ge=0, le=1)
    temperature: PositiveFloat = 0.1
    c: PositiveFloat = 0.1  # eq. 9 weight c, or RINCE exponent q with sym_variant "rince"
    sym_variant: Literal["eq9", "rince"] = "eq9"
    rince_lambda: PositiveFloat = 0.01
    lambda_w: float = Field(1.0, ge=0)
    sinkhorn_eps: PositiveFloat = 0.05
    sinkhorn_iters: PositiveInt = 50
    lambda_transform: float = Field(1.0, ge=0)
    proj_hidden: PositiveInt = 512
    proj_dim: PositiveInt = 128
    input_snrs: list[PositiveFloat] = Field(default_factory=lambda: [1.0, 0.3, 0.1, 0.05, 0.03])
    noisy_snr: PositiveFloat = 0.003
    max_rotation_deg: float = Field(180.0, ge=0, le=180)
    max_shift_px: float = Field(3.0, ge=0)
    seed: int = 0
    bf16: bool = False
    threads: int = Field(0, ge=0)  # 0: leave torch's default
    checkpoint_every: PositiveInt = 50
    log_every: PositiveInt = 5
    knn_every: int = Field(100, ge=0)
    max_wall_s: float | None = None  # stop (after checkpointing) once this wall time is spent
    stop_after_steps: PositiveInt | None = None  # run at most this many steps per invocation
    progress: bool = True


def load_pretrain_config(path: str | Path | None = None, **overrides) -> PretrainConfig:
    """YAML file (optional) → keyword overrides (``None`` ignored) → validated config."""
    return load_config(PretrainConfig, path, **overrides)


def build_source(cfg: DataConfig, cache_dir: Path | None = None) -> tuple[SubtomoSource, list[str]]:
    """The configured source and its class names (fast-path densities cached in ``cache_dir``)."""
    if cfg.kind == "store":
        if not cfg.store_path:
            raise InputError("data.store_path is required for kind 'store'",
                             field="data.store_path")
        src = StoreSource(cfg.store_path)
        names = [str(n) for n in src.store.attrs.get("class_names", [])]
        return src, names
    cache = None if cache_dir is None else Path(cache_dir) / "densities.pt"
    if cache is not None and cache.exists():
        blob = load_state(cache)
        dens, names = blob["densities"], blob["names"]
    else:
        dens, names = pretraining_densities(dict(cfg.families), list(cfg.singles), cfg.seed)
        if cache is not None:
            save_state(cache, {"densities": dens, "names": names})
    return FastPathSource(dens, cfg.n_rows, cfg.seed, offset_max_px=cfg.offset_max_px), names


def save_encoder(path: Path, encoder: torch.nn.Module, meta: dict) -> None:
    """Write ``{"config", "state_dict", "meta"}`` atomically (the pair-encoder format read by
    :func:`cryoframe.models.pretrained.load_pair_encoder_file`).
    """
    save_weights(path, {"config": encoder.config, "state_dict": encoder.state_dict(),
                        "meta": meta})


def _knn_monitor(source: SubtomoSource, cfg: PretrainConfig) -> tuple[KNNMonitor | None, list]:
    n = min(cfg.data.knn_holdout, len(source) // 2)
    if cfg.knn_every == 0 or n < 4:
        return None, []

    rows = list(range(len(source) - n, len(source)))
    batch = source.get(rows)
    noisy = add_noise(batch["clean"], cfg.data.knn_snr, seed=cfg.seed + 99, indices=rows)
    return KNNMonitor(noisy, batch["class_id"].numpy()), rows


def run_pretrain(cfg: PretrainConfig, out_dir: str | Path, source: SubtomoSource | None = None,
                 dist_info: DistInfo | None = None) -> dict:
    """Train (or resume) a run in ``out_dir``; returns a summary dict (also ``summary.json``).

    Parameters
    ----------
    cfg : PretrainConfig
        Run configuration.
    out_dir : str or Path
        Run folder (config, checkpoints, metrics, encoder weights).
    source : SubtomoSource, optional
        Data; default built from ``cfg.data``.
    dist_info : DistInfo, optional
        Data-parallel position; default from the ``torchrun`` environment.
    """
    out = Path(out_dir)
    info = dist_info or init_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_run_record(out / "config.json", "pretrain", cfg)
    if source is None:
        source, _ = build_source(cfg.data, out if info.is_main else None)
    torch.manual_seed(cfg.seed)
    encoder = create_model(cfg.model, **cfg.model_overrides)
    model = NRCL(encoder, cfg.proj_hidden, cfg.proj_dim, cfg.temperature, cfg.c, cfg.lambda_w,
                 cfg.sinkhorn_eps, cfg.sinkhorn_iters, cfg.lambda_transform,
                 sym_variant=cfg.sym_variant, rince_lambda=cfg.rince_lambda)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=0.0)
    peak_lr = cfg.lr if cfg.lr is not None else scaled_lr(cfg.batch_size * info.world_size,
                                                          cfg.base_lr)
    start = 0
    ck = load_state(out / "checkpoint.pt")
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start = int(ck["step"])
        set_rng_state(ck["rng"][min(info.rank, len(ck["rng"]) - 1)])
    monitor, held_out = _knn_monitor(source, cfg)
    rows = read_metrics_csv(out / "metrics.csv", start) if info.is_main else []
    wrapped: torch.nn.Module = model
    if info.active:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model)
    progress = None
    if cfg.progress and info.is_main:
        from rich.progress import Progress

        progress = Progress(transient=False)
        progress.start()
        task = progress.add_task("NRCL pretraining", total=cfg.steps, completed=start)
    t_start = time.perf_counter()
    stream = iterate_batches(source, cfg.batch_size, cfg.seed, start, info.rank, info.world_size,
                             exclude=held_out)
    step = start
    data_s = net_s = 0.0
    n_seen = 0
    last: dict = {}
    try:
        while step < cfg.steps:
            if cfg.max_wall_s is not None and time.perf_counter() - t_start > cfg.max_wall_s:
                break
            if cfg.stop_after_steps is not None and step - start >= cfg.stop_after_steps:
                break
            t0 = time.perf_counter()
            _, batch = next(stream)
            views = make_nrcl_views(
                batch["clean"], batch["index"], step=step, seed=cfg.seed * 1000 + info.rank,
                input_snrs=cfg.input_snrs, noisy_snr=cfg.noisy_snr,
                max_rotation_deg=cfg.max_rotation_deg, max_shift_px=cfg.max_shift_px)
            t1 = time.perf_counter()
            lr = warmup_cosine(step, cfg.steps, cfg.warmup_steps, peak_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                res = wrapped(views)
            opt.zero_grad(set_to_none=True)
            res["loss"].backward()
            opt.step()
            model.update_momentum(cfg.momentum)
            t2 = time.perf_counter()
            data_s += t1 - t0
            net_s += t2 - t1
            n_seen += cfg.batch_size
            step += 1
            last = {k: float(all_reduce_mean(v.detach().float(), info)) for k, v in res.items()}
            if info.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
                row = {"step": step, "lr": lr, **{k: round(v, 6) for k, v in last.items()},
                       "samples_per_s": n_seen * info.world_size / max(data_s + net_s, 1e-9),
                       "net_samples_per_s": n_seen * info.world_size / max(net_s, 1e-9),
                       "wall_s": time.perf_counter() - t_start}
                if monitor is not None and cfg.knn_every and step % cfg.knn_every == 0:
                    row["knn_acc"] = monitor(model.encoder)
                rows.append(row)
                write_metrics_csv(out / "metrics.csv", rows)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _checkpoint(out, model, opt, step, info, cfg)
            if progress is not None:
                progress.update(task, completed=step,
                                description=f"NRCL loss {last.get('loss', float('nan')):.3f}")
    finally:
        if progress is not None:
            progress.stop()
    if step % cfg.checkpoint_every != 0 and step != cfg.steps:
        _checkpoint(out, model, opt, step, info, cfg)
    summary = {"steps_done": step, "start_step": start, "peak_lr": peak_lr,
               "wall_s": time.perf_counter() - t_start, "world_size": info.world_size,
               "samples_per_s": n_seen * info.world_size / max(data_s + net_s, 1e-9),
               "net_samples_per_s": n_seen * info.world_size / max(net_s, 1e-9),
               "last": last}
    if monitor is not None and info.is_main:
        summary["knn_acc"] = monitor(model.encoder)
    if info.is_main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _checkpoint(out: Path, model: NRCL, opt: torch.optim.Optimizer, step: int, info: DistInfo,
                cfg: PretrainConfig) -> None:
    states = [rng_state()]
    if info.active:
        import torch.distributed as dist

        gathered: list = [None] * info.world_size
        dist.all_gather_object(gathered, states[0])
        states = gathered
    if info.is_main:
        save_state(out / "checkpoint.pt", {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
            "rng": states, "config": cfg.model_dump(mode="json")})
        save_encoder(out / "encoder.pt", model.encoder,
                     {"model": cfg.model, "steps": step, "seed": cfg.seed})
    barrier(info)


def embed_for_inference(encoder: torch.nn.Module, volumes: torch.Tensor,
                        batch_size: int = 64, wedge_average: bool = True) -> torch.Tensor:
    """`(B, L, L, L)` raw volumes → `(B, F)` float32 embeddings, standardised as in training.

    With ``wedge_average`` the features are averaged over the four rotations that keep the
    missing wedge in place (:func:`cryoframe.geometry.transforms.wedge_preserving_rotations`);
    measured on SUB5 (encoder-probe data, linear probe) this raised the shipped encoder from
    62.5 to 67.4 % at SNR 0.1 and from 51.5 to 56.6 % at SNR 0.03, at 4× the cost. Volumes are
    encoded ``batch_size`` at a time, so memory stays bounded for large B.
    """
    volumes = torch.as_tensor(volumes)
    out = []
    with torch.no_grad():
        for s0 in range(0, len(volumes), batch_size):
            x = standardize(volumes[s0:s0 + batch_size].float())[:, None]
            views = wedge_preserving_rotations(x) if wedge_average else [x]
            out.append(torch.stack([encoder.embed_single(v).float() for v in views]).mean(0))
    return torch.cat(out)


def pretrain_throughput(batch_size: int = 32, steps: int = 3, seed: int = 0,
                        model: str = "apt_pair_cpu",
                        singles: tuple[str, ...] = ("3QM1", "3H84", "2CG9")) -> dict[str, float]:
    """End-to-end NRCL pretraining rate next to the network-only rate, measured in one run.

    Each step draws fast-path subtomograms, makes the NRCL views (data path) and runs the
    forward/backward/AdamW/EMA step (network); one warm-up step is not timed.

    Returns
    -------
    dict
        ``pretrain_samples_per_s`` (data + network), ``net_samples_per_s`` (network only),
        ``data_samples_per_s`` (data path only), ``batch_size``, ``steps``.
    """
    from cryoframe.models import create_model
    from cryoframe.train.subtomo_data import FastPathSource, pretraining_densities

    torch.manual_seed(seed)
    dens, _ = pretraining_densities({}, list(singles), seed)
    source = FastPathSource(dens, 10 * batch_size * (steps + 1), seed)
    nrcl = NRCL(create_model(model))
    opt = torch.optim.AdamW([p for p in nrcl.parameters() if p.requires_grad], lr=1e-4)
    stream = iterate_batches(source, batch_size, seed)
    data_s = net_s = 0.0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        step, batch = next(stream)
        views = make_nrcl_views(batch["clean"], batch["index"], step=step, seed=seed)
        t1 = time.perf_counter()
        res = nrcl(views)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        opt.step()
        nrcl.update_momentum(0.99)
        t2 = time.perf_counter()
        if i > 0:
            data_s += t1 - t0
            net_s += t2 - t1
    n = batch_size * steps
    return {"pretrain_samples_per_s": n / (data_s + net_s), "net_samples_per_s": n / net_s,
            "data_samples_per_s": n / data_s, "batch_size": float(batch_size),
            "steps": float(steps)}
