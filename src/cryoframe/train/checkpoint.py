"""Training state shared by the NRCL, particle (MoCo / ranker) and hetero loops.

- :func:`save_state` / :func:`load_state`: an atomic ``torch.save`` of a plain dict and its
  ``weights_only=True`` read (``None`` when there is no checkpoint yet).
- :func:`rng_state` / :func:`set_rng_state`: the global torch, numpy and Python generators, stored
  so that a resumed run continues exactly (numpy's key array as a tensor: no pickled objects).
- :func:`write_metrics_csv` / :func:`read_metrics_csv`: the per-step metrics table, trimmed to the
  checkpoint step on resume.
- Run records: :func:`cryoframe._record.write_run_record`.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryoframe._atomic import atomic_path, atomic_write_text

__all__ = ["save_state", "load_state", "rng_state", "set_rng_state", "write_metrics_csv",
           "read_metrics_csv"]


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training state (plain dict of tensors and numbers) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path | None) -> dict[str, Any] | None:
    """Read a state written by :func:`save_state`, or ``None`` if ``path`` is None or absent."""
    if path is None or not Path(path).exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """The global torch, numpy and Python RNG states (loadable with ``weights_only=True``)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": (kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.int64).astype(np.uint32), pos,
                         has_gauss, gauss))
    random.setstate(state["python"])


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write metric rows (union of their keys as columns, first-seen order) atomically."""
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_metrics_csv(path: Path, max_step: int) -> list[dict[str, Any]]:
    """Rows of a metrics CSV up to ``max_step`` (the resumed checkpoint's step)."""
    if not path.exists():
        return []
    with path.open() as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= max_step]
