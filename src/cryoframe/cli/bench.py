"""``cryoframe bench <suite> [--quick]``: run a benchmark suite and write results.json + plots."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cryoframe.bench import available_suites, load_suite
from cryoframe.bench.results import write_results
from cryoframe.cli import _options as opt


def bench(
    suite: str = typer.Argument(..., help="Suite name (listed below), e.g. equivariance, throughput."),
    quick: bool = typer.Option(False, "--quick", help="Small version for tests and CI."),
    out: Path = typer.Option(None, "--out", help="Output folder (default bench_out/<suite>)."),
    seed: int = opt.seed(help="Seed of every random draw in the suite."),
) -> None:
    """Run a benchmark suite; every figure is measured in this run (suites listed below)."""
    module = load_suite(suite)
    out_dir = out or Path("bench_out") / suite
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = module.run(quick=quick, out_dir=out_dir, seed=seed)
    wall = time.perf_counter() - t0
    path = write_results(suite, quick, seed, result, out_dir, wall)
    console = Console()
    table = Table(title=f"{suite} ({'quick' if quick else 'full'}), {wall:.1f} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, value in result.metrics.items():
        shown = "missing" if value is None else f"{value:.4g}"
        table.add_row(name, shown, result.units.get(name, ""))
    console.print(table)
    if result.references:
        console.print("[dim]references (paper, on its own data):[/]")
        for name, value in result.references.items():
            console.print(f"  [dim]{name}: {value}[/]")
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command."""
    suites = ", ".join(available_suites())
    app.command("bench", epilog=f"Suites: {suites}.\n\n" + opt.example(
        "cryoframe bench equivariance --quick --out bench_out/equivariance"))(bench)
