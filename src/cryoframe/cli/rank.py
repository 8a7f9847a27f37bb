"""``cryoframe rank particles.star``: CryoRanker quality scores (``particles rank`` at the top level).

One implementation: :func:`cryoframe.cli.particles.particles_rank`, registered under both names.
"""

from __future__ import annotations

import typer

from cryoframe.cli import _options as opt
from cryoframe.cli.particles import particles_rank


def register(app: typer.Typer) -> None:
    """Add the top-level ``rank`` command (the same command as ``particles rank``)."""
    app.command("rank", epilog=opt.example(
        "cryoframe rank particles.star --out ranked.star --int8"))(particles_rank)
