"""``cryoframe reconstruct STAR --out DIR``: gold-standard half maps from particles with poses."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._record import write_run_record
from cryoframe.cli import _options as opt
from cryoframe.recon.reconstruct import (
    read_particle_set,
    reconstruct_particles,
    write_reconstruction,
)
from cryoframe.recon.tomo import is_tilt_series_star, read_tilt_series_particles

console = Console()


def reconstruct(
    star: Path = typer.Argument(..., help="Particle STAR: 2D stacks (RELION 3.0–5), or "
                                "RELION-5 / WarpTools tilt-series particles."),
    out: Path = typer.Option(..., "--out", help="Output folder (half maps, map, FSC)."),
    tomograms: Path = typer.Option(
        None, "--tomograms", help="RELION-5 tomograms STAR (tilt-series particles; default: "
        "from an optimisation set or <stem>_tomograms.star next to STAR)."),
    pad: int = typer.Option(1, "--pad", min=1, max=4,
                            help="Fourier oversampling (2 = RELION's, ~8× slower)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch (memory vs speed)."),
    mask_radius_px: float = typer.Option(None, "--mask-radius-px",
                                         help="Soft-sphere mask radius (default 0.4 box)."),
    seed: int = opt.seed(help="Random half split without rlnRandomSubset."),
    threads: int = opt.threads(),
) -> None:
    """Direct Fourier insertion of CTF-weighted images, Wiener-normalised half maps, FSC,
    resolution at 0.143 and cFAR.
    """
    import torch
    from rich.progress import Progress


    if threads:
        torch.set_num_threads(threads)
    if is_tilt_series_star(star):
        ps = read_tilt_series_particles(star, tomograms, seed=seed)
    else:
        ps = read_particle_set(star, seed=seed)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("inserting", total=len(ps))
        run = reconstruct_particles(ps, pad, batch_size,
                                    lambda d, t: bar.update(task, completed=d),
                                    mask_radius_px)
    summary = write_reconstruction(run, out, {"star": str(star), "pad": pad, "seed": seed})
    write_run_record(out / "reconstruct_run.json", "reconstruct", {
        "star": str(star), "tomograms": str(tomograms) if tomograms else None, "pad": pad,
        "batch_size": batch_size, "mask_radius_px": mask_radius_px, "seed": seed})
    nyq = " (Nyquist-limited)" if summary["nyquist_limited"] else ""
    console.print(f"{run.n_particles} images, {run.images_per_s:.0f} images/s: "
                  f"{summary['resolution_angstrom']:.2f} Å at FSC 0.143 (masked){nyq}, "
                  f"{summary['resolution_unmasked_angstrom']:.2f} Å unmasked, "
                  f"cFAR {summary['cfar']:.2f}; wrote {out}/map.mrc, half1/2.mrc, fsc.json, "
                  "fsc.png")


def register(app: typer.Typer) -> None:
    """Add the ``reconstruct`` command."""
    app.command("reconstruct", epilog=opt.example(
        "cryoframe reconstruct particles.star --out recon/"))(reconstruct)
