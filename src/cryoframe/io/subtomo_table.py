"""Canonical subtomogram table and its conversion to/from RELION STAR and Dynamo ``.tbl``.

The canonical table is a :class:`pandas.DataFrame` with one row per subtomogram and columns

========================================  ====================================================
``tomo_name``                              tomogram the particle was picked in (str)
``coord_z/y/x_angstrom``                   box centre in the tomogram, Å (pixel coordinate ×
                                           tilt-series pixel size; no origin offset)
``shift_z/y/x_angstrom``                   particle centre − box centre, Å
``rot_00`` … ``rot_22``                    pose matrix ``R[i, j]`` (active, acting on zyx column
                                           vectors: the particle is the reference rotated by R)
``class_id``                               class number (int)
``tag``                                    particle number (int)
========================================  ====================================================

so the particle centre is ``coord + shift``. Conversions:

* RELION: ``rlnCoordinateX/Y/Z`` [px], ``rlnAngleRot/Tilt/Psi``, ``rlnOriginX/Y/ZAngst`` [Å]
  (= −shift, RELION's sign), ``rlnTomoName``, ``rlnClassNumber``; pixel size from the optics
  block's ``rlnTomoTiltSeriesPixelSize`` or given explicitly.
* Dynamo: ``x, y, z`` [px], ``dx, dy, dz`` [px] (= +shift), ``tdrot, tilt, narot``, ``tomo``
  (index into a volume list), ``class``, ``tag``; pixel size given explicitly or from ``apix``.

Angles go through rotation matrices only (:mod:`cryoframe.geometry.euler`), never from one Euler
convention to the other directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cryoframe._errors import InputError
from cryoframe.geometry.euler import (
    dynamo_euler_to_matrix,
    matrix_to_dynamo_euler,
    matrix_to_relion_euler,
)
from cryoframe.io.dynamo import DYNAMO_COLUMNS
from cryoframe.io.star import ParticleTable, poses_from_particles, require_columns

__all__ = [
    "COORD_COLUMNS",
    "ROTATION_COLUMNS",
    "SHIFT_COLUMNS",
    "make_subtomo_table",
    "subtomo_from_dynamo",
    "subtomo_from_relion",
    "subtomo_rotations",
    "subtomo_to_dynamo",
    "subtomo_to_relion",
]

COORD_COLUMNS = ("coord_z_angstrom", "coord_y_angstrom", "coord_x_angstrom")
SHIFT_COLUMNS = ("shift_z_angstrom", "shift_y_angstrom", "shift_x_angstrom")
ROTATION_COLUMNS = tuple(f"rot_{i}{j}" for i in range(3) for j in range(3))


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def make_subtomo_table(
    coords_zyx_angstrom: Any,
    rotations: Any,
    shifts_zyx_angstrom: Any | None = None,
    tomo_names: Any | None = None,
    class_ids: Any | None = None,
    tags: Any | None = None,
) -> pd.DataFrame:
    """Build a canonical subtomogram table.

    Parameters
    ----------
    coords_zyx_angstrom : array-like
        `(n, 3)` box centres in the tomogram, Å, zyx.
    rotations : array-like
        `(n, 3, 3)` pose matrices acting on zyx column vectors.
    shifts_zyx_angstrom : array-like, optional
        `(n, 3)` particle centre − box centre, Å (default 0).
    tomo_names : sequence of str, optional
        Tomogram of each particle (default ``""``).
    class_ids, tags : sequence of int, optional
        Class numbers (default 0) and particle numbers (default 1..n).
    """
    coords = _np(coords_zyx_angstrom).reshape(-1, 3)
    n = len(coords)
    rot = _np(rotations)
    if rot.shape != (n, 3, 3):
        raise InputError(f"rotations have shape {rot.shape}", field="rotations",
                         expected=f"({n}, 3, 3)")
    shifts = np.zeros((n, 3)) if shifts_zyx_angstrom is None else \
        _np(shifts_zyx_angstrom).reshape(n, 3)
    df = pd.DataFrame({
        "tomo_name": [""] * n if tomo_names is None else [str(t) for t in tomo_names],
        **{c: coords[:, i] for i, c in enumerate(COORD_COLUMNS)},
        **{c: shifts[:, i] for i, c in enumerate(SHIFT_COLUMNS)},
        **{c: rot.reshape(n, 9)[:, k] for k, c in enumerate(ROTATION_COLUMNS)},
        "class_id": np.zeros(n, np.int64) if class_ids is None else
        np.asarray(class_ids, dtype=np.int64),
        "tag": np.arange(1, n + 1) if tags is None else np.asarray(tags, dtype=np.int64),
    })
    return df


def subtomo_rotations(df: pd.DataFrame) -> torch.Tensor:
    """`(n, 3, 3)` float64 pose matrices of a canonical table."""
    require_columns(df, list(ROTATION_COLUMNS), what="subtomogram table")
    return torch.tensor(df[list(ROTATION_COLUMNS)].to_numpy(np.float64, copy=True)).reshape(-1, 3,
                                                                                            3)


def _positive_pixel_size(value: float, file: Path | None, field: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"invalid pixel size {value}", file=file, field=field,
                         expected="a positive number of Å per pixel")
    return float(value)


def subtomo_from_relion(table: ParticleTable, pixel_size_angstrom: float | None = None,
                        ) -> pd.DataFrame:
    """Canonical table from a RELION (3.1–5) subtomogram particle table.

    Parameters
    ----------
    table : ParticleTable
        Needs ``rlnCoordinateX/Y/Z`` and ``rlnAngleRot/Tilt/Psi``.
    pixel_size_angstrom : float, optional
        Pixel size of the coordinates. Default: ``rlnTomoTiltSeriesPixelSize`` of each
        particle's optics group (RELION 4/5 coordinates are in unbinned tilt-series pixels).
    """
    df = table.particles
    file = table.source
    if "rlnCoordinateX" not in df.columns and "rlnCenteredCoordinateXAngst" in df.columns:
        raise InputError("centred coordinates need the tomogram sizes to become absolute",
                         file=file, field="rlnCoordinateX",
                         expected="rlnCoordinateX/Y/Z in pixels")
    require_columns(df, ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"], file=file,
                    what="subtomogram particle table")
    if pixel_size_angstrom is not None:
        px: Any = _positive_pixel_size(pixel_size_angstrom, file, "pixel_size_angstrom")
    elif "rlnTomoTiltSeriesPixelSize" in df.columns:
        px = df["rlnTomoTiltSeriesPixelSize"].to_numpy(np.float64)
        if not np.all(px > 0):
            raise InputError("non-positive pixel size", file=file,
                             field="rlnTomoTiltSeriesPixelSize", expected="> 0")
    else:
        raise InputError("cannot tell the pixel size of the coordinates", file=file,
                         field="rlnTomoTiltSeriesPixelSize",
                         expected="rlnTomoTiltSeriesPixelSize in data_optics, or --pixel-size")
    coords_px = df[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy(np.float64)
    coords = coords_px * np.reshape(px, (-1, 1))
    rotations, shifts = poses_from_particles(table)
    names = df["rlnTomoName"].astype(str).tolist() if "rlnTomoName" in df.columns else None
    classes = df["rlnClassNumber"].to_numpy() if "rlnClassNumber" in df.columns else None
    tags = df["rlnTomoParticleId"].to_numpy() if "rlnTomoParticleId" in df.columns else None
    return make_subtomo_table(coords, rotations, shifts, names, classes, tags)


def subtomo_to_relion(df: pd.DataFrame, pixel_size_angstrom: float) -> ParticleTable:
    """RELION-5 style particle table (optics + particles) from a canonical table.

    Coordinates are written in pixels of size ``pixel_size_angstrom`` (also stored as
    ``rlnTomoTiltSeriesPixelSize`` in a single optics group), origins in Å.
    """
    require_columns(df, ["tomo_name", *COORD_COLUMNS, *SHIFT_COLUMNS, *ROTATION_COLUMNS],
                    what="subtomogram table")
    px = _positive_pixel_size(pixel_size_angstrom, None, "pixel_size_angstrom")
    rot_deg, tilt_deg, psi_deg = (t.numpy() for t in matrix_to_relion_euler(subtomo_rotations(df)))
    shifts = df[list(SHIFT_COLUMNS)].to_numpy(np.float64)
    particles = pd.DataFrame({
        "rlnTomoName": df["tomo_name"].astype(str).to_numpy(),
        "rlnTomoParticleId": df["tag"].to_numpy(np.int64) if "tag" in df.columns
        else np.arange(1, len(df) + 1),
        "rlnCoordinateX": df["coord_x_angstrom"].to_numpy(np.float64) / px,
        "rlnCoordinateY": df["coord_y_angstrom"].to_numpy(np.float64) / px,
        "rlnCoordinateZ": df["coord_z_angstrom"].to_numpy(np.float64) / px,
        "rlnAngleRot": rot_deg,
        "rlnAngleTilt": tilt_deg,
        "rlnAnglePsi": psi_deg,
        "rlnOriginXAngst": 0.0 - shifts[:, 2] + 0.0,
        "rlnOriginYAngst": 0.0 - shifts[:, 1] + 0.0,
        "rlnOriginZAngst": 0.0 - shifts[:, 0] + 0.0,
        "rlnClassNumber": df["class_id"].to_numpy(np.int64) if "class_id" in df.columns
        else np.zeros(len(df), np.int64),
        "rlnOpticsGroup": np.ones(len(df), np.int64),
    })
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnTomoTiltSeriesPixelSize": [px]})
    merged = particles.assign(rlnOpticsGroupName="opticsGroup1", rlnTomoTiltSeriesPixelSize=px)
    return ParticleTable(particles=merged, optics=optics,
                         optics_columns=("rlnOpticsGroupName", "rlnTomoTiltSeriesPixelSize"),
                         blocks={"optics": optics, "particles": particles},
                         particles_block="particles", optics_block="optics")


def subtomo_from_dynamo(tbl: pd.DataFrame, pixel_size_angstrom: float | None = None,
                        tomograms: dict[int, str] | None = None, *,
                        file: str | Path | None = None) -> pd.DataFrame:
    """Canonical table from a Dynamo table (see :func:`cryoframe.io.dynamo.read_tbl`).

    Parameters
    ----------
    tbl : pandas.DataFrame
        Needs ``x, y, z, dx, dy, dz, tdrot, tilt, narot``.
    pixel_size_angstrom : float, optional
        Pixel size of positions and shifts; default the table's ``apix`` column (36).
    tomograms : dict of int to str, optional
        Volume list ``{tomo index: name}``; default the index as text.
    """
    fpath = None if file is None else Path(file)
    require_columns(tbl, ["x", "y", "z", "dx", "dy", "dz", "tdrot", "tilt", "narot"],
                    file=fpath, what="Dynamo table")
    if pixel_size_angstrom is None:
        if "apix" not in tbl.columns or not np.all(tbl["apix"] > 0):
            raise InputError("the Dynamo table does not store its pixel size", file=fpath,
                             field="apix", expected="--pixel-size (Å per tomogram pixel)")
        px: Any = tbl["apix"].to_numpy(np.float64)
    else:
        px = _positive_pixel_size(pixel_size_angstrom, fpath, "pixel_size_angstrom")
    scale = np.reshape(px, (-1, 1))
    coords = tbl[["z", "y", "x"]].to_numpy(np.float64) * scale
    shifts = tbl[["dz", "dy", "dx"]].to_numpy(np.float64) * scale
    ang = torch.tensor(tbl[["tdrot", "tilt", "narot"]].to_numpy(np.float64, copy=True))
    rotations = dynamo_euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    if "tomo" in tbl.columns:
        idx = tbl["tomo"].to_numpy()
        names = [(tomograms or {}).get(int(i), str(int(i))) for i in idx]
    else:
        names = None
    classes = tbl["class"].to_numpy() if "class" in tbl.columns else None
    tags = tbl["tag"].to_numpy() if "tag" in tbl.columns else None
    return make_subtomo_table(coords, rotations, shifts, names, classes, tags)


def subtomo_to_dynamo(df: pd.DataFrame, pixel_size_angstrom: float,
                      ) -> tuple[pd.DataFrame, dict[int, str]]:
    """Dynamo table (all 35 columns) and volume list from a canonical table.

    Tomogram names that are all integers keep their numbers; otherwise tomograms are numbered
    1..k in order of first appearance.

    Returns
    -------
    tbl : pandas.DataFrame
        Columns as :data:`cryoframe.io.dynamo.DYNAMO_COLUMNS` (+ ``apix``).
    tomograms : dict of int to str
        ``{tomo index: tomogram name}`` for a Dynamo ``.doc`` volume list.
    """
    require_columns(df, ["tomo_name", *COORD_COLUMNS, *SHIFT_COLUMNS, *ROTATION_COLUMNS],
                    what="subtomogram table")
    px = _positive_pixel_size(pixel_size_angstrom, None, "pixel_size_angstrom")
    names = df["tomo_name"].astype(str).tolist()
    unique = list(dict.fromkeys(names))
    if all(n.lstrip("-").isdigit() for n in unique):
        index = {n: int(n) for n in unique}
    else:
        index = {n: i + 1 for i, n in enumerate(unique)}
    tdrot, tilt, narot = (t.numpy() for t in matrix_to_dynamo_euler(subtomo_rotations(df)))
    n = len(df)
    tbl = pd.DataFrame(0.0, index=range(n), columns=list(DYNAMO_COLUMNS))
    tbl["tag"] = df["tag"].to_numpy(np.int64) if "tag" in df.columns else np.arange(1, n + 1)
    tbl["aligned"] = 1
    tbl["averaged"] = 1
    tbl["dx"] = df["shift_x_angstrom"].to_numpy(np.float64) / px
    tbl["dy"] = df["shift_y_angstrom"].to_numpy(np.float64) / px
    tbl["dz"] = df["shift_z_angstrom"].to_numpy(np.float64) / px
    tbl["tdrot"], tbl["tilt"], tbl["narot"] = tdrot, tilt, narot
    tbl["tomo"] = [index[n_] for n_ in names]
    tbl["reg"] = 1
    tbl["class"] = df["class_id"].to_numpy(np.int64) if "class_id" in df.columns else 0
    tbl["x"] = df["coord_x_angstrom"].to_numpy(np.float64) / px
    tbl["y"] = df["coord_y_angstrom"].to_numpy(np.float64) / px
    tbl["z"] = df["coord_z_angstrom"].to_numpy(np.float64) / px
    tbl["apix"] = px
    return tbl, {i: n_ for n_, i in index.items()}
