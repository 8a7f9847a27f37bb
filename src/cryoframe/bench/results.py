"""The ``results.json`` format shared by all benchmark suites (see BENCHMARKS.md).

``{"suite", "quick", "git_commit", "date", "seed", "metrics": {name: number}, ...}`` plus
``units``, ``references`` (paper numbers, labelled "paper, on its own data"), ``versions``,
``wall_time_s`` and free-form ``details``. A metric that was not measured is stored as ``null``
(reported missing), never filled in.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoframe._atomic import atomic_write_text


@dataclass
class SuiteResult:
    """What a suite returns: metrics and their units, paper references, extra details."""

    metrics: dict[str, float | None]
    units: dict[str, str] = field(default_factory=dict)
    references: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def progress(message: str) -> None:
    """Print one timestamped progress line of a long suite to stderr (kept out of the table)."""
    import sys
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def git_commit() -> str:
    """Commit hash of the working tree the code runs from ("unknown" outside git)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of Python, cryoframe and the numerical libraries."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ["cryoframe", "torch", "numpy", "scipy", "e3nn", "scikit-learn"]:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "missing"
    try:
        import torch

        out["torch_threads"] = str(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        pass
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _clean(value.item())
        except (ValueError, TypeError):
            return value
    return value


def write_results(
    suite: str, quick: bool, seed: int, result: SuiteResult, out_dir: Path, wall_time_s: float
) -> Path:
    """Write ``out_dir/results.json`` atomically and return its path."""
    payload = {
        "suite": suite,
        "quick": bool(quick),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": int(seed),
        "metrics": _clean(dict(result.metrics)),
        "units": result.units,
        "references": _clean(result.references),
        "versions": versions(),
        "wall_time_s": round(float(wall_time_s), 2),
        "details": _clean(result.details),
    }
    path = Path(out_dir) / "results.json"
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path
