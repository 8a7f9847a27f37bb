"""The one run-record writer: every command, loop and simulation records what it ran.

A record is a JSON object with the keys ``command``, ``version``, ``argv``, ``time_utc`` and
``config`` (the resolved options or pydantic config), plus any extra keys the caller adds.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cryoframe import __version__
from cryoframe._atomic import atomic_write_text

__all__ = ["run_record", "write_run_record", "write_timestamped_record", "config_record_path"]


def _as_json(config: Any) -> Any:
    if isinstance(config, BaseModel):
        return json.loads(config.model_dump_json())
    return config


def run_record(command: str, config: Any, argv: list[str] | None = None,
               **extra: Any) -> dict[str, Any]:
    """The record dict (see the module docstring); ``config`` may be a pydantic model."""
    return {"command": command, "version": __version__,
            "argv": list(sys.argv if argv is None else argv),
            "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "config": _as_json(config), **extra}


def write_run_record(path: str | Path, command: str, config: Any, argv: list[str] | None = None,
                     **extra: Any) -> Path:
    """Write a record to ``path`` atomically (overwriting: the record of the current state)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(run_record(command, config, argv, **extra), indent=2,
                                       default=str) + "\n")
    return path


def write_timestamped_record(out_dir: str | Path, command: str, config: Any,
                             **extra: Any) -> Path:
    """Write ``<command>_run_<UTC time>.json`` in ``out_dir``: a later run never overwrites an
    earlier one's record.
    """
    now = _dt.datetime.now(_dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
    out_dir = Path(out_dir)
    path = out_dir / f"{command}_run_{stamp}.json"
    k = 1
    while path.exists():
        path = out_dir / f"{command}_run_{stamp}_{k}.json"
        k += 1
    return write_run_record(path, command, config, **extra)


def config_record_path(out: str | Path) -> Path:
    """Where the resolved config of an output goes: ``<file>.config.json`` beside an output file,
    ``<folder>/config.json`` inside an output folder.
    """
    out = Path(out)
    return out.with_name(out.name + ".config.json") if out.suffix else out / "config.json"
