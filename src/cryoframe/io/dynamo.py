"""Dynamo ``.tbl`` particle tables.

A ``.tbl`` is a whitespace-separated numeric table, one particle per row, with 35 standard
columns (Dynamo wiki, "Table convention"): shifts ``dx, dy, dz`` and positions ``x, y, z`` in
pixels of the tomogram, Euler angles ``tdrot, tilt, narot`` in degrees (Dynamo ZXZ, see
:mod:`cryoframe.geometry.euler`), ``tomo`` the index of the tomogram in the volume list.
Extra columns (36 ``apix``, 37 ``def``, 41–42 ``eig1/eig2``, others ``colN``) are kept.

MATLAB sometimes writes complex numbers (``0+1.2e-06i``) when an angle computation picked up a
round-off imaginary part; these are read as their real part with a :class:`DynamoTableWarning`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError

__all__ = [
    "DYNAMO_COLUMNS",
    "DynamoTableWarning",
    "column_name",
    "read_tbl",
    "read_tomogram_doc",
    "write_tbl",
    "write_tomogram_doc",
]

#: The 35 standard Dynamo table columns, in order (column 33 is unused by Dynamo).
DYNAMO_COLUMNS: tuple[str, ...] = (
    "tag", "aligned", "averaged", "dx", "dy", "dz", "tdrot", "tilt", "narot", "cc",
    "cc2", "cpu", "ftype", "ymintilt", "ymaxtilt", "xmintilt", "xmaxtilt", "fs1", "fs2", "tomo",
    "reg", "class", "annotation", "x", "y", "z", "dshift", "daxis", "dnarot", "dcc",
    "otag", "npar", "col33", "ref", "sref",
)
_EXTRA = {36: "apix", 37: "def", 41: "eig1", 42: "eig2"}
_INTEGER_COLUMNS = {"tag", "aligned", "averaged", "cpu", "ftype", "tomo", "reg", "class",
                    "annotation", "otag", "npar", "ref", "sref"}
_COMPLEX = re.compile(r"^([-+]?[0-9.]+(?:[eE][-+]?\d+)?)([-+][0-9.]*(?:[eE][-+]?\d+)?)[ij]$")


class DynamoTableWarning(UserWarning):
    """A table value was coerced (e.g. a MATLAB complex number read as its real part)."""


def column_name(index_1based: int) -> str:
    """Name of Dynamo column ``index_1based`` (``"tag"`` for 1, ``"col50"`` for unnamed ones)."""
    if 1 <= index_1based <= len(DYNAMO_COLUMNS):
        return DYNAMO_COLUMNS[index_1based - 1]
    return _EXTRA.get(index_1based, f"col{index_1based}")


def _column_index(name: str) -> int | None:
    if name in DYNAMO_COLUMNS:
        return DYNAMO_COLUMNS.index(name) + 1
    for k, v in _EXTRA.items():
        if v == name:
            return k
    m = re.fullmatch(r"col(\d+)", name)
    return int(m.group(1)) if m else None


def _parse_token(token: str) -> tuple[float, bool]:
    """Value of one token and whether it was a complex number."""
    try:
        return float(token), False
    except ValueError:
        m = _COMPLEX.match(token)
        if m is None:
            raise
        return float(m.group(1)), True


def read_tbl(path: str | Path) -> pd.DataFrame:
    """Read a Dynamo table.

    Parameters
    ----------
    path : str or Path
        ``.tbl`` file.

    Returns
    -------
    pandas.DataFrame
        One row per particle, columns named as in :data:`DYNAMO_COLUMNS` (integer-valued
        bookkeeping columns such as ``tag``, ``tomo``, ``class`` as int64, the rest float64).

    Raises
    ------
    InputError
        Missing file, rows of different lengths, or tokens that are not numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field="path", expected="an existing file")
    rows: list[list[float]] = []
    n_complex = 0
    first_complex = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if rows and len(tokens) != len(rows[0]):
                raise InputError(f"line {lineno} has {len(tokens)} columns", file=path,
                                 field=f"line {lineno}", expected=f"{len(rows[0])} columns")
            values = []
            for col, tok in enumerate(tokens, start=1):
                try:
                    val, was_complex = _parse_token(tok)
                except ValueError:
                    raise InputError(f"line {lineno}: '{tok}' is not a number", file=path,
                                     field=column_name(col),
                                     expected="a real number (Dynamo table)") from None
                if was_complex:
                    n_complex += 1
                    first_complex = first_complex or f"'{tok}' (line {lineno}, {column_name(col)})"
                values.append(val)
            rows.append(values)
    if not rows:
        raise InputError("empty table", file=path, field="rows", expected="at least one particle")
    if n_complex:
        warnings.warn(f"{path}: {n_complex} complex value(s) such as {first_complex} read as "
                      "their real part", DynamoTableWarning, stacklevel=2)
    arr = np.asarray(rows, dtype=np.float64)
    df = pd.DataFrame(arr, columns=[column_name(i + 1) for i in range(arr.shape[1])])
    for col in df.columns:
        if col in _INTEGER_COLUMNS and np.all(np.isfinite(df[col])) \
                and np.all(df[col] == np.round(df[col])):
            df[col] = df[col].astype(np.int64)
    return df


def _format(v: float) -> str:
    return "%.10g" % v


def write_tbl(path: str | Path, df: pd.DataFrame) -> Path:
    """Write a Dynamo table atomically.

    Parameters
    ----------
    path : str or Path
        Destination ``.tbl``.
    df : pandas.DataFrame
        Columns named as in :data:`DYNAMO_COLUMNS` (and ``apix``, ``def``, ``eig1``, ``eig2``,
        ``colN``). Missing standard columns are written as 0, except ``tag`` (1..n) and
        ``aligned`` / ``averaged`` (1). Values must be finite.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    indices = {}
    for name in df.columns:
        idx = _column_index(str(name))
        if idx is None:
            raise InputError(f"unknown Dynamo column '{name}'", file=path, field=str(name),
                             expected="a Dynamo table column name (tag, dx, ..., x, y, z, ...)")
        indices[idx] = str(name)
    n_cols = max([len(DYNAMO_COLUMNS), *indices])
    n = len(df)
    table = np.zeros((n, n_cols), dtype=np.float64)
    table[:, 0] = np.arange(1, n + 1)
    table[:, 1] = 1.0
    table[:, 2] = 1.0
    for idx, name in indices.items():
        vals = pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(vals)):
            bad = int(np.flatnonzero(~np.isfinite(vals))[0])
            raise InputError(f"row {bad} has a non-finite or non-numeric value", file=path,
                             field=name, expected="finite numbers")
        table[:, idx - 1] = vals
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in table:
            fh.write(" ".join(_format(v) for v in row))
            fh.write("\n")
    return path


def read_tomogram_doc(path: str | Path) -> dict[int, str]:
    """Read a Dynamo volume-list ``.doc`` file (``index path`` per line) as ``{index: path}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field="path", expected="an existing file")
    out: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].lstrip("-").isdigit():
            raise InputError(f"line {lineno} is '{line.strip()}'", file=path,
                             field=f"line {lineno}", expected="'<integer index> <tomogram path>'")
        out[int(parts[0])] = parts[1].strip()
    return out


def write_tomogram_doc(path: str | Path, tomograms: dict[int, str]) -> Path:
    """Write a Dynamo volume-list ``.doc`` file (``index path`` per line) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{i} {name}\n" for i, name in sorted(tomograms.items())),
                       encoding="utf-8")
    return path
