"""``cryoframe particles {simulate,pretrain,embed,rank,cluster}``: 2D particle images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console

from cryoframe._config import load_config
from cryoframe._record import config_record_path, write_run_record, write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.particles.cluster import cluster_star
from cryoframe.particles.embed import embed_star
from cryoframe.particles.rank import rank_star
from cryoframe.simulate.particles2d import ParticleSimConfig, simulate_particle_stack
from cryoframe.train.particle_loop import run_pretraining

console = Console()


#: help epilog of ``particles simulate`` and its alias ``simulate particles``
SIMULATE_EXAMPLE = opt.example(
    "cryoframe particles simulate 3J9I --out sim/particles.star --n 1000 --snr 0.1",
    "cryoframe simulate particles 3J9I --out sim/particles.star --config particles.yaml")


def particles_simulate(
    density: str = typer.Argument(..., help="Bundled map/structure ID or MRC/PDB path."),
    out: Path = typer.Option(..., "--out", help="Output STAR (stack written as .mrcs)."),
    n: int = typer.Option(1000, "--n", help="Number of particles."),
    config: Path = opt.config("ParticleSimConfig"),
    box_size_px: int = typer.Option(None, "--box", help="Box size in pixels (default 64)."),
    pixel_size_angstrom: float = opt.pixel_size(
        help="Pixel size in Å (default: box = 1.6 × diameter)."),
    snr: float = typer.Option(None, "--snr", help="Var(signal)/Var(noise) per image (default 0.1)."),
    defocus_min_um: float = typer.Option(None, "--defocus-min-um",
                                         help="Lowest defocus in µm (default 1.0)."),
    defocus_max_um: float = typer.Option(None, "--defocus-max-um",
                                         help="Highest defocus in µm (default 3.0)."),
    voltage_kv: float = typer.Option(None, "--voltage-kv",
                                     help="Acceleration voltage in kV (default 300)."),
    cs_mm: float = typer.Option(None, "--cs-mm",
                                help="Spherical aberration in mm (default 2.7)."),
    amplitude_contrast: float = typer.Option(None, "--amplitude-contrast",
                                             help="Amplitude contrast fraction (default 0.1)."),
    astigmatism_max_angstrom: float = typer.Option(
        None, "--astigmatism-max-angstrom", min=0.0,
        help="DefocusU − DefocusV drawn uniformly in [0, this] Å (default 500); angle uniform "
             "in [0, 180)."),
    shift_sigma_angstrom: float = typer.Option(
        None, "--shift-sigma-angstrom", min=0.0,
        help="σ of the Gaussian in-plane shifts (Å, default 0), written as rlnOriginX/YAngst = "
             "−shift."),
    seed: int = opt.seed(),
) -> None:
    """Simulate particle images (projection, CTF, noise) as MRCS + RELION STAR.

    Options come from --config (YAML with ParticleSimConfig fields), overridden by flags.
    ``cryoframe simulate particles`` is the same command.
    """
    cfg = load_config(
        ParticleSimConfig, config, box_size_px=box_size_px,
        pixel_size_angstrom=pixel_size_angstrom, snr=snr,
        defocus_min_angstrom=None if defocus_min_um is None else defocus_min_um * 1e4,
        defocus_max_angstrom=None if defocus_max_um is None else defocus_max_um * 1e4,
        voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast,
        astigmatism_max_angstrom=astigmatism_max_angstrom,
        shift_sigma_angstrom=shift_sigma_angstrom)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_run_record(config_record_path(out), "particles simulate", cfg)
    write_timestamped_record(out.parent, "particles_simulate",
                             {"density": density, "n": n, "seed": seed, **cfg.model_dump()})
    sim = simulate_particle_stack(density, n, out, cfg, seed=seed)
    console.print(f"wrote {n} particles ({cfg.box_size_px}² px, "
                  f"{sim.pixel_size_angstrom:.3f} Å/px, SNR {cfg.snr}) to {out}")


def particles_pretrain(
    out_dir: Path = typer.Option(Path("particle_pretrain"), "--out-dir", help="Run folder (checkpoints, metrics, weights); rerun to resume."),
    n_per_density: int = typer.Option(1500, "--n-per-density", help="Simulated images per pretraining density."),
    steps: int = typer.Option(1000, "--steps", help="MoCo optimisation steps."),
    batch_size: int = opt.batch_size(128),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate of MoCo."),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Wall-time limit of MoCo."),
    ranker: bool = typer.Option(True, "--ranker/--no-ranker", help="Fine-tune CryoRanker."),
    ranker_steps: int = typer.Option(400, "--ranker-steps", help="CryoRanker fine-tuning steps."),
    ranker_minutes: float = typer.Option(None, "--ranker-minutes", help="Wall-time limit of the CryoRanker fine-tuning."),
    n_per_kind: int = typer.Option(150, "--n-per-kind", help="Ranker images per junk kind."),
    threads: int = opt.threads(),
    seed: int = opt.seed(),
    temperature: float = typer.Option(0.5, "--temperature", help="InfoNCE τ (paper 0.5)."),
    noise_sigma_max: float = typer.Option(
        0.0, "--noise-aug", help="Max σ of independent noise added to each view (0 = off)."),
    ranker_only: bool = typer.Option(
        False, "--ranker-only", help="Only fine-tune CryoRanker on out-dir's encoder."),
    warmup_steps: int = typer.Option(50, "--warmup-steps", min=0, help="Linear learning-rate warm-up steps."),
    init_encoder: Path = typer.Option(
        None, "--init-encoder", help="Start MoCo from this encoder checkpoint."),
) -> None:
    """MoCo v3 pretraining on simulated pretraining densities (+ CryoRanker fine-tuning).

    Resumable: rerun with the same options and output folder to continue.
    """
    if threads:
        torch.set_num_threads(threads)
    config = dict(n_per_density=n_per_density, steps=steps, batch_size=batch_size, lr=lr,
                  max_minutes=max_minutes, ranker=ranker, ranker_steps=ranker_steps,
                  ranker_minutes=ranker_minutes, n_per_kind=n_per_kind, seed=seed,
                  temperature=temperature, noise_sigma_max=noise_sigma_max,
                  ranker_only=ranker_only, warmup_steps=warmup_steps,
                  init_encoder=init_encoder)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_timestamped_record(out_dir, "particles_pretrain", config)
    summary = run_pretraining(out_dir, log=console.print, **config)
    console.print_json(json.dumps(summary, default=str))


def particles_embed(
    star: Path = typer.Argument(..., help="Particle STAR file (RELION 3.0 or 3.1+)."),
    out: Path = typer.Option(None, "--out", help="Features .npy (default <stem>_features.npy)."),
    weights: Path = opt.weights(),
    batch_size: int = opt.batch_size(512),
    phase_flip: bool = opt.phase_flip(),
    contrast: str = opt.contrast(),
    rotations: int = typer.Option(8, "--rotations", min=1,
                                  help="In-plane rotations to average features over."),
) -> None:
    """Frozen encoder features of every particle, in STAR order."""
    out = out or star.with_name(f"{star.stem}_features.npy")
    info = embed_star(star, out, weights, batch_size, phase_flip, contrast,
                      in_plane_rotations=rotations)
    console.print(f"embedded {info['n']} particles → {info['features']} "
                  f"({info['n']} × {info['dim']}, {info['particles_per_s']:.0f} particles/s)")


def particles_rank(
    star: Path = typer.Argument(..., help="Particle STAR file (RELION 3.0 or 3.1+)."),
    out: Path = typer.Option(None, "--out", help="Ranked STAR (default <stem>_ranked.star)."),
    weights: Path = opt.weights(),
    batch_size: int = opt.batch_size(512),
    phase_flip: bool = opt.phase_flip(),
    contrast: str = opt.contrast(),
    threads: int = opt.threads(),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 quantisation (≈2× faster)."),
) -> None:
    """Score particles with CryoRanker: STAR with rlnCryoRankerScore, sorted, + histogram PNG.

    ``cryoframe rank`` is the same command.
    """
    if threads:
        torch.set_num_threads(threads)
    res = rank_star(star, out, weights, batch_size, phase_flip, contrast, progress=True, int8=int8)
    s = res.scores
    console.print(
        f"ranked {len(s)} particles in {res.seconds:.2f} s ({res.particles_per_s:.0f} particles/s); "
        f"score min {s.min():.3f} / median {np.median(s):.3f} / max {s.max():.3f}; "
        f"{int((s > 0.7).sum())} above 0.7, {int((s <= 0.3).sum())} at or below 0.3"
        + ("; contrast inverted (dark protein detected)" if res.contrast_sign < 0 else ""))
    console.print(f"wrote {res.star}" + (f" and {res.histogram}" if res.histogram else ""))


def particles_cluster(
    star: Path = typer.Argument(..., help="Particle STAR file."),
    n_clusters: int = typer.Option(8, "--n-clusters", "-k", help="Number of clusters."),
    out: Path = typer.Option(None, "--out", help="STAR with rlnClassNumber (default "
                             "<stem>_clusters.star)."),
    weights: Path = opt.weights(),
    seed: int = opt.seed(),
    phase_flip: bool = opt.phase_flip(),
    contrast: str = opt.contrast(),
    rotations: int = typer.Option(8, "--rotations", min=1,
                                  help="In-plane rotations to average features over."),
) -> None:
    """Pose clustering: k-means++ on encoder features (rlnClassNumber = cluster + 1)."""
    res = cluster_star(star, n_clusters, out, weights, seed, phase_flip, contrast,
                       in_plane_rotations=rotations)
    console.print(f"{len(res['labels'])} particles in {n_clusters} clusters, sizes "
                  f"{res['counts']}; wrote {res['star']}")


def register(app: typer.Typer) -> None:
    """Add the ``particles`` sub-app."""
    sub = typer.Typer(name="particles", help="2D cryo-EM particle images: simulate, pretrain, "
                      "embed, rank, cluster.", no_args_is_help=True)
    app.add_typer(sub, name="particles")

    sub.command("simulate", epilog=SIMULATE_EXAMPLE)(particles_simulate)
    sub.command("pretrain", epilog=opt.example(
        "cryoframe particles pretrain --out-dir particle_pretrain --steps 1000"))(particles_pretrain)
    sub.command("embed", epilog=opt.example(
        "cryoframe particles embed particles.star --out features.npy"))(particles_embed)
    sub.command("rank", epilog=opt.example(
        "cryoframe particles rank particles.star --out ranked.star", "cryoframe rank particles.star --int8"))(particles_rank)
    sub.command("cluster", epilog=opt.example(
        "cryoframe particles cluster particles.star -k 8"))(particles_cluster)
