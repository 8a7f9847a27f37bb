"""``cryoframe rank particles.star``: CryoRanker quality scores (same as ``particles rank``)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoframe.cli.particles import _rank_command


def rank(
    star: Path = typer.Argument(..., help="Particle STAR file (RELION 3.0 or 3.1+)."),
    out: Path = typer.Option(None, "--out", help="Ranked STAR (default <stem>_ranked.star)."),
    weights: Path = typer.Option(None, "--weights", help="Ranker checkpoint (default shipped)."),
    batch_size: int = typer.Option(512, "--batch-size"),
    phase_flip: bool = typer.Option(False, "--phase-flip/--no-phase-flip"),
    contrast: str = typer.Option("auto", "--contrast",
                                 help="Protein contrast: auto (detect), white, dark (invert)."),
    threads: int = typer.Option(None, "--threads"),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 quantisation (≈2× faster)."),
) -> None:
    """Score particles with CryoRanker: STAR with rlnCryoRankerScore, sorted, + histogram."""
    _rank_command(star, out, weights, batch_size, phase_flip, contrast, threads, int8)


def register(app: typer.Typer) -> None:
    """Add the top-level ``rank`` command."""
    app.command("rank")(rank)
