"""YAML → overrides → validated pydantic config, shared by every configurable command.

Configs are data only (frozen pydantic models); this is the one place that reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cryoframe._errors import InputError

__all__ = ["FrozenConfig", "load_config"]

M = TypeVar("M", bound=BaseModel)


class FrozenConfig(BaseModel):
    """Base of every configuration: frozen pydantic data, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def load_config(cls: type[M], config_path: str | Path | None = None, /, **overrides) -> M:
    """YAML file (optional) → flag overrides (``None`` values ignored) → validated ``cls``.

    Nested keys are given as ``"tomogram.ctf"``-style names or ``tomogram__ctf`` keywords.

    Raises
    ------
    InputError
        Missing file, invalid YAML, a non-mapping document, or a value that fails validation
        (the error names the field).
    """
    data: dict = {}
    path = config_path
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise InputError("config file not found", file=p)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML: {exc}", file=p) from None
        if not isinstance(data, dict):
            raise InputError("config must be a mapping", file=p)
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.replace("__", ".").split(".")
        d = data
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = value
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(err["msg"], file=path, field=".".join(str(x) for x in err["loc"]),
                         expected=f"see {cls.__module__}.{cls.__name__}") from None
