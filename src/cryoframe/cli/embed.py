"""``cryoframe embed INPUT --out emb.npz``: embeddings of subtomograms with a pretrained encoder.

The work is :func:`cryoframe.subtomograms.embed.embed_to_file` (inputs, resampling to the
encoder's sampling and the ``.npz`` layout are described there).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cryoframe._errors import InputError
from cryoframe.cli import _options as opt
from cryoframe.subtomograms.embed import embed_to_file


def embed(
    input: Path = typer.Argument(..., help="Store folder, STAR file or MRC volume."),
    out: Path = typer.Option(Path("embeddings.npz"), "--out", help="Output .npz file."),
    weights: Path = opt.weights(),
    batch_size: int = opt.batch_size(64, help="Volumes per batch."),
    pixel_size_angstrom: float = opt.pixel_size(help="Voxel size of the input (Å); default from the files."),
    class_number: int = opt.class_number(),
    class_column: str = opt.class_column(),
) -> None:
    """Write embeddings of subtomograms to an .npz file."""
    from rich.console import Console

    if not input.exists():
        raise InputError("input not found", file=input)
    console = Console()
    res = embed_to_file(input, out, weights, batch_size, pixel_size_angstrom,
                        class_number, class_column, log=console.print)
    console.print(f"wrote {res['n']} embeddings of dimension {res['dim']} to {out} "
                  f"(input {res['voxel_size_angstrom']:g} Å/voxel)")


def register(app: typer.Typer) -> None:
    """Add the ``embed`` command."""
    app.command("embed", epilog=opt.example(
        "cryoframe embed subtomos.star --out embeddings.npz --pixel-size 10"))(embed)
