"""``cryoframe refine STAR --reference MAP --out DIR``: gold-standard projection matching."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._record import write_run_record
from cryoframe.cli import _options as opt
from cryoframe.recon.refine import RefineConfig, refine_star

console = Console()


def refine(
    star: Path = typer.Argument(..., help="2D particle STAR (poses optional)."),
    reference: Path = typer.Option(..., "--reference", help="Starting map (MRC), same box "
                                   "and voxel size as the particles."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    lowpass_angstrom: float = typer.Option(30.0, "--lowpass-angstrom",
                                           help="Low-pass of the starting map."),
    global_search: bool = typer.Option(None, "--global/--local",
                                       help="Global SO(3) search first (default: only "
                                       "when the STAR has no angles)."),
    global_step_deg: float = typer.Option(10.0, "--global-step-deg", help="SO(3) grid step of the global search (degrees)."),
    max_iterations: int = typer.Option(8, "--max-iterations", min=1, help="Refinement iterations at most."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per batch (memory vs speed)."),
    seed: int = opt.seed(help="Random half split without rlnRandomSubset."),
    threads: int = opt.threads(),
) -> None:
    """Refine poses (angles, shifts) with independent half maps and frequency marching;
    writes refined.star, half maps, map, FSC and the per-iteration history.
    """
    import torch


    if threads:
        torch.set_num_threads(threads)
    cfg = RefineConfig(initial_lowpass_angstrom=lowpass_angstrom, global_search=global_search,
                       global_step_deg=global_step_deg, max_iterations=max_iterations,
                       batch_size=batch_size)
    res = refine_star(star, reference, out, cfg, seed, log=console.print)
    write_run_record(out / "refine_run.json", "refine", {
        "star": str(star), "reference": str(reference), "seed": seed, **cfg.__dict__})
    console.print(f"{len(res.rotations)} particles, {res.maps.resolution_angstrom:.2f} Å at "
                  f"FSC 0.143 (masked), cFAR {res.maps.cfar:.2f}, {res.seconds:.0f} s; wrote "
                  f"{out}/refined.star, map.mrc, half1/2.mrc, fsc.json, history.json")


def register(app: typer.Typer) -> None:
    """Add the ``refine`` command."""
    app.command("refine", epilog=opt.example(
        "cryoframe refine particles.star --reference initial_model.mrc --out refine/"))(refine)
