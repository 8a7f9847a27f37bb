"""``cryoframe info [FILE]``: a file's header summary, or versions, bundled data and devices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cryoframe import __version__
from cryoframe.cli import _options as opt
from cryoframe.data import list_bundled
from cryoframe.io.summary import describe_file


def info(
    file: Path = typer.Argument(None, help="MRC/MRCS, STAR, tbl or PDB/mmCIF file."),
) -> None:
    """Summarise FILE's header; without FILE, print versions, bundled data and devices."""
    if file is not None:

        rows = describe_file(file)
        table = Table(title=str(file), show_header=False)
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for k, v in rows:
            table.add_row(k, v)
        Console().print(table)
        return
    import importlib.metadata as md

    import torch


    console = Console()
    table = Table(title=f"cryoframe {__version__}")
    table.add_column("component")
    table.add_column("version / value")
    for pkg in ["torch", "numpy", "scipy", "mrcfile", "starfile", "gemmi", "e3nn",
                "torch_geometric", "zarr", "pydantic", "MDAnalysis"]:
        try:
            table.add_row(pkg, md.version(pkg.replace("_", "-")))
        except md.PackageNotFoundError:
            table.add_row(pkg, "not installed")
    table.add_row("torch threads", str(torch.get_num_threads()))
    table.add_row("CUDA available", str(torch.cuda.is_available()))
    console.print(table)
    bundled = list_bundled()
    console.print(f"bundled data: {len(bundled)} files")
    for name in bundled:
        console.print(f"  {name}")


def register(app: typer.Typer) -> None:
    """Add the ``info`` command."""
    app.command("info", epilog=opt.example(
        "cryoframe info map.mrc", "cryoframe info"))(info)
