"""Benchmark suites (``cryoframe bench <suite> [--quick]``); protocols in BENCHMARKS.md.

Each suite is a module ``cryoframe.bench.<suite_with_underscores>`` exposing

``run(quick: bool, out_dir: pathlib.Path, seed: int) -> SuiteResult``

It simulates its own data from bundled structures with fixed seeds, measures every figure (never
copies one), writes its PNG plots into ``out_dir`` and returns the metrics;
:func:`cryoframe.bench.results.write_results` then writes ``results.json``.
"""

from __future__ import annotations

import importlib
import pkgutil

from cryoframe._errors import InputError

SUITE_MODULE_PREFIX = "cryoframe.bench."


def available_suites() -> list[str]:
    """Names of the suites present in this installation (dash-separated, as on the CLI)."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in {"results"}:
            continue
        names.append(info.name.replace("_", "-"))
    return sorted(names)


def load_suite(name: str):
    """Import the module of suite ``name`` (e.g. ``"sub5-classify"``)."""
    if name not in available_suites():
        raise InputError(
            f"unknown benchmark suite '{name}'", field="suite",
            expected=f"one of {available_suites()}",
        )
    return importlib.import_module(SUITE_MODULE_PREFIX + name.replace("-", "_"))
