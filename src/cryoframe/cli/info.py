"""``cryoframe info``: versions, bundled data and compute devices."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add the ``info`` command."""

    @app.command("info")
    def info() -> None:
        """Print versions of cryoframe and its key dependencies, bundled data and devices."""
        import importlib.metadata as md

        import torch

        from cryoframe import __version__
        from cryoframe.data import list_bundled

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
