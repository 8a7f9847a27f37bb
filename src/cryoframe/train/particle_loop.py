"""Training of the particle encoder (MoCo v3) and of CryoRanker, on simulated particles.

* :func:`simulate_pretraining_pool` — particles of the pretraining densities only (never the
  particles-knn / particles-rank benchmark structures), CTF, per-image SNR log-uniform in
  ``snr_range``, plus a fraction of junk (real pretraining sets are picked particles, junk
  included), normalised like real data (background ring).
* :func:`pretrain_moco` — MoCo v3 with AdamW, linear warm-up + cosine learning rate, momentum
  0.99 raised to 1 along a cosine; checkpointed every ``checkpoint_every`` steps and resumable
  (model, optimiser, step, elapsed time and RNG state). With a wall-time limit the schedules
  follow whichever of step fraction and time fraction is larger, so a run cut by the limit has
  still warmed up, annealed and stopped cleanly.
* :func:`finetune_ranker` — full-network fine-tuning of encoder + two-logit head with
  ``L_CE + L_MR`` (eq. 7–11, α = 0.7, Δ = 0.2), rotation + intensity augmentation only
  (cropping would fake the off-centre defect).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cryoframe._atomic import atomic_write_text
from cryoframe._config import FrozenConfig
from cryoframe._errors import InputError
from cryoframe.data import PARTICLE_PRETRAIN_DENSITIES
from cryoframe.models.pretrained import (
    PARTICLE_ENCODER_FORMAT,
    PARTICLE_RANKER_FORMAT,
    particle_encoder_state,
    read_particle_checkpoint,
    save_particle_checkpoint,
)
from cryoframe.models.vit2d import VIT2D_CONFIGS, ParticleRanker, ViT2d
from cryoframe.simulate.junk2d import JUNK_KINDS, simulate_junk_set
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.simulate.particles2d import (
    ParticleSimConfig,
    background_ring_normalise,
    centre_density,
    read_density_volume,
    simulate_particles,
)
from cryoframe.train.augment2d import ParticleAugment, two_views
from cryoframe.train.checkpoint import load_state, save_state
from cryoframe.train.losses_margin import cryoranker_loss
from cryoframe.train.moco import MoCoV3
from cryoframe.train.momentum import cosine_momentum
from cryoframe.train.schedules import warmup_cosine

__all__ = ["ParticlePretrainConfig", "RankerConfig",
           "simulate_pretraining_pool", "simulate_ranking_pool", "pretrain_moco",
           "finetune_ranker", "run_pretraining"]

Log = Callable[[str], None]


def _add_noise(clean: torch.Tensor, snr: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=gen)
    return combine_signal_noise(clean, noise, snr, correction=1)


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(n, generator=gen))


def simulate_pretraining_pool(
    n_per_density: int,
    densities: tuple[str, ...] = PARTICLE_PRETRAIN_DENSITIES,
    snr_range: tuple[float, float] = (0.02, 1.0),
    junk_fraction: float = 0.2,
    box_size_px: int = 64,
    seed: int = 0,
    log: Log | None = None,
) -> torch.Tensor:
    """Normalised simulated particles `(N, box, box)` of the pretraining densities.

    Parameters
    ----------
    n_per_density : int
        Good particles per density; ``junk_fraction × n`` junk images are added per density.
    densities : tuple of str
        Bundled map / structure IDs.
    snr_range : tuple of float
        Per-image SNR, log-uniform.
    junk_fraction : float
        Junk images relative to good ones.
    box_size_px : int
        Output box (boxed at 1.6 × the longest diameter).
    seed : int
        Seed of every draw.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for name in densities:
        vol, vs = read_density_volume(name)
        vol = centre_density(vol)
        cfg = ParticleSimConfig(box_size_px=box_size_px, snr=None)
        sim = simulate_particles(vol, vs, n_per_density, cfg, gen)
        snr = _log_uniform(n_per_density, *snr_range, gen)
        out.append(background_ring_normalise(_add_noise(sim.clean, snr, gen)))
        n_junk = int(round(junk_fraction * n_per_density / len(JUNK_KINDS)))
        if n_junk > 0:
            snr_j = float(_log_uniform(1, *snr_range, gen))
            js = simulate_junk_set(vol, vs, n_junk, cfg.model_copy(update={"snr": snr_j}), gen,
                                   kinds=JUNK_KINDS)
            out.append(background_ring_normalise(js.images))
        if log:
            log(f"simulated {name}: {n_per_density} particles + {n_junk * len(JUNK_KINDS)} junk")
    return torch.cat(out)


def simulate_ranking_pool(
    n_per_kind: int,
    densities: tuple[str, ...] = PARTICLE_PRETRAIN_DENSITIES,
    snr_range: tuple[float, float] = (0.03, 0.5),
    good_factor: float = 3.0,
    box_size_px: int = 64,
    seed: int = 0,
    log: Log | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Good + junk images with quality scores for CryoRanker (one SNR per density and set).

    Returns
    -------
    images : Tensor
        `(N, box, box)` normalised.
    scores : Tensor
        `(N,)` quality in [0, 1].
    kinds : Tensor
        `(N,)` index into :data:`cryoframe.simulate.junk2d.KINDS`.
    """
    from cryoframe.simulate.junk2d import simulate_junk_set
    from cryoframe.simulate.particles2d import (
        ParticleSimConfig,
        centre_density,
        read_density_volume,
    )

    gen = torch.Generator().manual_seed(seed)
    imgs, scores, kinds = [], [], []
    for name in densities:
        vol, vs = read_density_volume(name)
        vol = centre_density(vol)
        snr = float(_log_uniform(1, *snr_range, gen))
        cfg = ParticleSimConfig(box_size_px=box_size_px, snr=snr)
        js = simulate_junk_set(vol, vs, n_per_kind, cfg, gen,
                               n_good=int(round(good_factor * n_per_kind)))
        imgs.append(background_ring_normalise(js.images))
        scores.append(js.scores)
        kinds.append(js.kinds)
        if log:
            log(f"ranking set {name}: {js.images.shape[0]} images at SNR {snr:.3f}")
    return torch.cat(imgs), torch.cat(scores), torch.cat(kinds)


class ParticlePretrainConfig(FrozenConfig):
    """MoCo v3 hyper-parameters (paper values in brackets; CPU-sized defaults)."""

    model: str = "particle_vit_cpu"
    steps: int = 1000
    batch_size: int = 128          # [2048]
    lr: float = 5e-4               # [1e-5 × 2048/256]; higher for the short CPU schedule
    weight_decay: float = 0.05
    warmup_steps: int = 50         # [5 epochs]
    temperature: float = 0.5       # [0.5]
    momentum: float = 0.99         # [0.99]
    proj_dim: int = 256            # [256]
    mlp_dim: int = 1024            # [4096]
    seed: int = 0
    max_minutes: float | None = None
    checkpoint_every: int = 25
    noise_sigma_max: float = 0.0   # extra independent noise per view (0: paper's recipe)


def _progress(step: int, steps: int, elapsed_s: float, max_minutes: float | None) -> float:
    """Training progress in [0, 1]: the step fraction, or the wall-time fraction if larger, so a
    time-limited run still warms up, anneals and stops with a finished schedule.
    """
    frac = step / max(steps, 1)
    if max_minutes is not None:
        frac = max(frac, elapsed_s / (60.0 * max_minutes))
    return min(frac, 1.0)


def _load_init_encoder(encoder: ViT2d, path: str | Path) -> None:
    """Load the weights of an encoder (or ranker) checkpoint into ``encoder`` (same config)."""
    ckpt = read_particle_checkpoint(path, field="init_encoder")
    try:
        encoder.load_state_dict(particle_encoder_state(ckpt), strict=True)
    except RuntimeError as exc:
        raise InputError(f"encoder weights do not fit this model ({str(exc)[:100]})",
                         file=path, field="config",
                         expected="a checkpoint of the same ViT configuration") from None


def pretrain_moco(
    images: torch.Tensor,
    cfg: ParticlePretrainConfig,
    checkpoint: str | Path | None = None,
    log: Log | None = None,
    init_encoder: str | Path | None = None,
) -> tuple[ViT2d, dict[str, Any]]:
    """MoCo v3 pretraining of a 2D ViT on normalised images `(N, s, s)`.

    If ``checkpoint`` exists, training resumes from it (same data and config expected); it is
    rewritten every ``cfg.checkpoint_every`` steps and at the end. Otherwise, with
    ``init_encoder`` the online and momentum backbones start from that encoder checkpoint
    (projector and predictor start fresh): a new schedule continuing an earlier pretraining.

    Returns
    -------
    encoder : ViT2d
        The online backbone (eval mode).
    history : dict
        ``loss`` per step, ``steps_done``, ``wall_s`` (this session), ``samples_per_s``.
    """
    torch.manual_seed(cfg.seed)
    arch = dict(VIT2D_CONFIGS[cfg.model])
    encoder = ViT2d(**arch)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if init_encoder is not None and not (ckpt_path is not None and ckpt_path.exists()):
        _load_init_encoder(encoder, init_encoder)
        if log:
            log(f"encoder initialised from {init_encoder}")
    model = MoCoV3(encoder, encoder.embed_dim, cfg.proj_dim, cfg.mlp_dim, cfg.temperature)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, losses, elapsed_before = 0, [], 0.0
    if ckpt_path is not None and ckpt_path.exists():
        state = load_state(ckpt_path)
        model.load_state_dict(state["model"])
        model.temperature = cfg.temperature  # a resumed run may change τ (not a parameter)
        opt.load_state_dict(state["opt"])
        gen.set_state(state["rng"])
        step, losses = int(state["step"]), list(state["losses"])
        elapsed_before = float(state.get("elapsed_s", 0.0))
        if log:
            log(f"resumed from {ckpt_path} at step {step}")
    n = images.shape[0]
    t0 = time.perf_counter()
    start_step = step

    def save() -> None:
        if ckpt_path is not None:
            save_state(ckpt_path, {"model": model.state_dict(), "opt": opt.state_dict(),
                              "rng": gen.get_state(), "step": step, "losses": losses,
                              "elapsed_s": elapsed_before + time.perf_counter() - t0,
                              "config": cfg.model_dump()})

    model.train()
    while step < cfg.steps:
        frac = _progress(step, cfg.steps, elapsed_before + time.perf_counter() - t0,
                         cfg.max_minutes)
        if frac >= 1.0:
            if log:
                log(f"time limit reached at step {step}")
            break
        virtual = int(frac * cfg.steps)  # schedules follow steps or wall time, whichever leads
        lr = warmup_cosine(virtual, cfg.steps, cfg.warmup_steps, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        x = images[idx][:, None]
        v1, v2 = two_views(x, gen, cfg.noise_sigma_max)
        out = model(v1, v2)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.update_momentum(cosine_momentum(virtual, cfg.steps, cfg.momentum))
        losses.append(float(out["loss"].detach()))
        step += 1
        if log and (step % 10 == 0 or step == 1):
            log(f"step {step}/{cfg.steps} loss {losses[-1]:.4f} lr {lr:.2e} "
                f"{(step - start_step) * cfg.batch_size / (time.perf_counter() - t0):.0f} samples/s")
        if step % cfg.checkpoint_every == 0:
            save()
    save()
    wall = time.perf_counter() - t0
    hist = {"loss": losses, "steps_done": step, "wall_s": wall,
            "samples_per_s": (step - start_step) * cfg.batch_size / max(wall, 1e-9)}
    return model.backbone.eval(), hist


class RankerConfig(FrozenConfig):
    """CryoRanker fine-tuning hyper-parameters (α, Δ as in the paper)."""

    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    alpha: float = 0.7
    margin: float = 0.2
    seed: int = 0
    max_minutes: float | None = None


def finetune_ranker(
    encoder: ViT2d,
    images: torch.Tensor,
    scores: torch.Tensor,
    cfg: RankerConfig,
    log: Log | None = None,
) -> tuple[ParticleRanker, dict[str, Any]]:
    """Fine-tune encoder + head with ``L_CE + L_MR`` on images `(N, s, s)` and scores `(N,)`.

    Returns
    -------
    ranker : ParticleRanker
        Eval mode.
    history : dict
        ``loss``, ``ce``, ``mr`` per step, ``steps_done``, ``wall_s``.
    """
    torch.manual_seed(cfg.seed)
    ranker = ParticleRanker(encoder)
    ranker.train()
    opt = torch.optim.AdamW([
        {"params": ranker.encoder.parameters(), "lr": cfg.lr},
        {"params": ranker.head.parameters(), "lr": cfg.head_lr},
    ], weight_decay=cfg.weight_decay)
    base = [cfg.lr, cfg.head_lr]
    aug = ParticleAugment(crop_scale=(1.0, 1.0), rotate=True, jitter=0.2, jitter_p=0.8,
                          blur_p=0.0, solarize_p=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist: dict[str, Any] = {"loss": [], "ce": [], "mr": []}
    t0 = time.perf_counter()
    n = images.shape[0]
    step = 0
    while step < cfg.steps:
        frac = _progress(step, cfg.steps, time.perf_counter() - t0, cfg.max_minutes)
        if frac >= 1.0:
            if log:
                log(f"ranker: time limit reached at step {step}")
            break
        for g, b in zip(opt.param_groups, base):
            g["lr"] = warmup_cosine(int(frac * cfg.steps), cfg.steps, cfg.warmup_steps, b)
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        x = aug(images[idx][:, None], gen)
        out = cryoranker_loss(ranker(x), scores[idx], cfg.alpha, cfg.margin)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        for k in ("loss", "ce", "mr"):
            hist[k].append(float(out[k].detach()))
        step += 1
        if log and (step % 10 == 0 or step == 1):
            log(f"ranker step {step}/{cfg.steps} loss {hist['loss'][-1]:.4f} "
                f"(ce {hist['ce'][-1]:.3f}, mr {hist['mr'][-1]:.3f})")
    hist["steps_done"] = step
    hist["wall_s"] = time.perf_counter() - t0
    return ranker.eval(), hist



def run_pretraining(
    out_dir: str | Path,
    n_per_density: int = 1500,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 5e-4,
    max_minutes: float | None = None,
    ranker: bool = True,
    ranker_steps: int = 400,
    ranker_minutes: float | None = None,
    n_per_kind: int = 150,
    seed: int = 0,
    log: Log | None = None,
    temperature: float = 0.5,
    noise_sigma_max: float = 0.0,
    ranker_only: bool = False,
    warmup_steps: int = 50,
    init_encoder: str | Path | None = None,
) -> dict[str, Any]:
    """Simulate the pretraining pool, run MoCo v3, optionally fine-tune CryoRanker; write
    ``particle_vit_cpu.pt`` / ``particle_ranker_cpu.pt`` and ``history.json`` in ``out_dir``.

    Resumable: the simulated pool (``pool.pt``) and the MoCo checkpoint (``moco_ckpt.pt``) are
    reused when present. ``init_encoder`` starts MoCo from an earlier encoder checkpoint (see
    :func:`pretrain_moco`).
    """
    import json
    import platform


    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    if ranker_only:  # fine-tune CryoRanker on the encoder already in out_dir
        return _ranker_stage(out, n_per_kind, batch_size, ranker_steps, ranker_minutes, seed,
                             log, t_all)
    pool_path = out / "pool.pt"
    if pool_path.exists():
        pool = load_state(pool_path)
    else:
        t0 = time.perf_counter()
        pool = simulate_pretraining_pool(n_per_density, seed=seed, log=log)
        save_state(pool_path, pool)
        if log:
            log(f"pool {tuple(pool.shape)} in {time.perf_counter() - t0:.0f} s")
    cfg = ParticlePretrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         max_minutes=max_minutes, temperature=temperature,
                         noise_sigma_max=noise_sigma_max, warmup_steps=warmup_steps)
    encoder, hist = pretrain_moco(pool, cfg, out / "moco_ckpt.pt", log, init_encoder)
    if ranker and (out / "particle_ranker_cpu.pt").exists():
        (out / "particle_ranker_cpu.pt").unlink()  # stale: made from the previous encoder
    arch = dict(VIT2D_CONFIGS[cfg.model])
    meta = {"densities": list(PARTICLE_PRETRAIN_DENSITIES), "n_images": int(pool.shape[0]),
            "steps": hist["steps_done"], "pretrain_config": cfg.model_dump(),
            "init_encoder": str(init_encoder) if init_encoder is not None else None,
            "moco_wall_s_last_session": round(hist["wall_s"], 1),
            "samples_per_s": round(hist["samples_per_s"], 1),
            "final_loss": hist["loss"][-1] if hist["loss"] else None,
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "preprocess": {"target_size_px": 64, "contrast": "white",
                           "normalisation": "background ring 0.75"}}
    save_particle_checkpoint(out / "particle_vit_cpu.pt", encoder, PARTICLE_ENCODER_FORMAT, arch, meta)
    summary: dict[str, Any] = {"encoder": str(out / "particle_vit_cpu.pt"), **meta}
    history: dict[str, Any] = {"moco_loss": hist["loss"]}
    if ranker:
        t0 = time.perf_counter()
        imgs, scores, _ = simulate_ranking_pool(n_per_kind, seed=seed + 1, log=log)
        rcfg = RankerConfig(steps=ranker_steps, batch_size=batch_size, seed=seed,
                            max_minutes=ranker_minutes)
        rk, rhist = finetune_ranker(encoder, imgs, scores, rcfg, log)
        rmeta = {**meta, "ranker_config": rcfg.model_dump(), "ranker_steps": rhist["steps_done"],
                 "ranker_images": int(imgs.shape[0]),
                 "ranker_wall_s": round(time.perf_counter() - t0, 1)}
        save_particle_checkpoint(out / "particle_ranker_cpu.pt", rk, PARTICLE_RANKER_FORMAT, arch, rmeta)
        summary["ranker"] = str(out / "particle_ranker_cpu.pt")
        summary.update({k: v for k, v in rmeta.items() if k.startswith("ranker_")})
        history["ranker_loss"] = rhist["loss"]
    summary["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    atomic_write_text(out / "history.json", json.dumps({**summary, **history}, default=str) + "\n")
    return summary


def _ranker_stage(out: Path, n_per_kind: int, batch_size: int, ranker_steps: int,
                  ranker_minutes: float | None, seed: int, log: Log | None,
                  t_all: float) -> dict[str, Any]:
    import json

    from cryoframe._atomic import atomic_write_text

    ckpt = read_particle_checkpoint(out / "particle_vit_cpu.pt")
    encoder = ViT2d(**ckpt["config"])
    encoder.load_state_dict(ckpt["state_dict"])
    t0 = time.perf_counter()
    imgs, scores, _ = simulate_ranking_pool(n_per_kind, seed=seed + 1, log=log)
    rcfg = RankerConfig(steps=ranker_steps, batch_size=batch_size, seed=seed,
                        max_minutes=ranker_minutes)
    rk, rhist = finetune_ranker(encoder, imgs, scores, rcfg, log)
    meta = {**ckpt["meta"], "ranker_config": rcfg.model_dump(), "ranker_steps": rhist["steps_done"],
            "ranker_images": int(imgs.shape[0]),
            "ranker_wall_s": round(time.perf_counter() - t0, 1)}
    save_particle_checkpoint(out / "particle_ranker_cpu.pt", rk, PARTICLE_RANKER_FORMAT, ckpt["config"], meta)
    summary = {"ranker": str(out / "particle_ranker_cpu.pt"),
               **{k: v for k, v in meta.items() if k.startswith("ranker_")},
               "total_wall_s": round(time.perf_counter() - t_all, 1)}
    atomic_write_text(out / "history_ranker.json",
                      json.dumps({**summary, "ranker_loss": rhist["loss"]}, default=str) + "\n")
    return summary
