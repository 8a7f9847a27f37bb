"""``cryoframe demo``: the end-to-end main job on bundled data (see :mod:`cryoframe.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoframe.cli import _options as opt
from cryoframe.demo import run_demo


def demo(
    out: Path = typer.Option(Path("cryoframe_demo"), "--out", help="Output folder."),
    seed: int = opt.seed(help="Seed of every random draw."),
    quick: bool = typer.Option(False, "--quick", help="Fewer particles (a smoke run)."),
    weights: Path = opt.weights(),
) -> None:
    """Simulate → embed with the shipped encoder → classify, align, average → HTML report."""
    from rich.console import Console


    console = Console()
    report = run_demo(out, seed=seed, quick=quick, console=console, weights=weights)
    console.print(f"[bold green]done[/]: open {report}")


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""
    app.command("demo", epilog=opt.example(
        "cryoframe demo --out cryoframe_demo", "cryoframe demo --quick"))(demo)
