"""``cryoframe abinitio STAR --out DIR``: an initial model without a reference."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._record import write_run_record
from cryoframe.cli import _options as opt
from cryoframe.io.mrc import write_mrc
from cryoframe.recon.abinitio import AbinitioConfig, abinitio_particles
from cryoframe.recon.refine import read_particle_set_any

console = Console()


def abinitio(
    star: Path = typer.Argument(..., help="2D particle STAR (poses ignored)."),
    out: Path = typer.Option(..., "--out", help="Output folder (initial_model.mrc)."),
    subset_size: int = typer.Option(2000, "--subset-size", min=10, help="Particles in the random subset used for the search."),
    n_rounds: int = typer.Option(16, "--rounds", min=1, help="Frequency-marching rounds."),
    start_resolution: float = typer.Option(None, "--start-resolution-angstrom",
                                           help="Default: 5 Fourier shells."),
    end_resolution: float = typer.Option(None, "--end-resolution-angstrom", help="Resolution of the last round (default: max(2.5 pixels, start / 2))."),
    seed: int = opt.seed(),
    threads: int = opt.threads(),
) -> None:
    """Frequency-marching global pose search from a blob over random mini-batches; the
    model seeds `cryoframe refine` (its hand is undetermined).
    """
    import torch


    if threads:
        torch.set_num_threads(threads)
    ps, _ = read_particle_set_any(star, seed)
    cfg = AbinitioConfig(subset_size=subset_size, n_rounds=n_rounds,
                         start_resolution_angstrom=start_resolution,
                         end_resolution_angstrom=end_resolution, seed=seed)
    res = abinitio_particles(ps, cfg, log=console.print)
    out.mkdir(parents=True, exist_ok=True)
    write_mrc(out / "initial_model.mrc", res.volume.numpy(), ps.pixel_size_angstrom)
    write_run_record(out / "abinitio.json", "abinitio", {"star": str(star), **cfg.__dict__},
                     history=res.history)
    console.print(f"initial model from {len(res.rows)} particles in {res.seconds:.0f} s: "
                  f"wrote {out}/initial_model.mrc")


def register(app: typer.Typer) -> None:
    """Add the ``abinitio`` command."""
    app.command("abinitio", epilog=opt.example(
        "cryoframe abinitio particles.star --out abinitio/"))(abinitio)
