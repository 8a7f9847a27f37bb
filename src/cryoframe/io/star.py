"""RELION STAR files through :mod:`starfile`: particles (3.0 and 3.1–5), tomograms, tilt series.

Particle tables
---------------
RELION 3.0 files hold one ``data_`` (or ``data_images``) loop with all columns per particle.
RELION 3.1–5 files split per-group optics (pixel size, voltage, Cs ...) into ``data_optics``
and refer to it through ``rlnOpticsGroup``. :func:`read_particles` merges the optics columns into
every particle row (so ``table.particles`` always has them) and :func:`write_particles` splits
them back into the optics block; other blocks (e.g. RELION-5 ``data_general``) are kept as they
were and rewritten in their original order.

Units at the boundary
---------------------
* Pixel size of the images: ``rlnImagePixelSize`` (3.1+), else
  ``rlnDetectorPixelSize`` [µm] × 10⁴ / ``rlnMagnification`` (3.0).
* Shifts: ``rlnOriginX/Y/ZAngst`` [Å] (3.1+), else ``rlnOriginX/Y/Z`` [px] × pixel size (3.0).

Pose convention
---------------
:func:`poses_from_particles` returns cryoframe poses: ``R`` is the active rotation (acting on
zyx column vectors) that takes the reference to the particle, converted from RELION's
(rot, tilt, psi) by :func:`cryoframe.geometry.euler.relion_euler_to_matrix`, and
``shifts_zyx_angstrom`` is the particle centre relative to the box centre. RELION stores the
*opposite* vector as its origin (the particle centre sits at box centre − rlnOrigin; re-centring
extraction uses ``rlnCoordinate − rlnOrigin``), so ``shift = −rlnOrigin`` here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile
import torch

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError
from cryoframe.geometry.euler import matrix_to_relion_euler, relion_euler_to_matrix

__all__ = [
    "ParticleTable",
    "TomogramTable",
    "particles_with_poses",
    "pixel_size_angstrom",
    "poses_from_particles",
    "read_particles",
    "read_star",
    "read_tilt_series",
    "read_tomograms",
    "require_columns",
    "write_particles",
    "write_star",
]

#: Format used for floats when writing: enough digits to reproduce every value read.
FLOAT_FORMAT = "%.12g"

Block = pd.DataFrame | dict[str, Any]


def require_columns(
    df: pd.DataFrame, columns: list[str] | tuple[str, ...], *, file: str | Path | None = None,
    what: str = "table",
) -> None:
    """Raise :class:`InputError` naming the first missing column of ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{what} lacks column(s) {', '.join(missing)}", file=file, field=missing[0],
            expected=f"columns {', '.join(columns)}",
        )


def read_star(path: str | Path) -> dict[str, Block]:
    """Read every data block of a STAR file.

    Parameters
    ----------
    path : str or Path
        STAR file.

    Returns
    -------
    dict
        Block name (without ``data_``; ``""`` for an anonymous block) → ``DataFrame`` for loops or
        ``dict`` for key/value blocks, in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field="path", expected="an existing file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - starfile raises assorted parsing errors
        raise InputError(f"cannot parse STAR file ({type(exc).__name__}: {exc})", file=path,
                         field="data_", expected="a STAR file with data_ blocks") from exc
    if not blocks:
        raise InputError("no data blocks found", file=path, field="data_",
                         expected="at least one data_ block")
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame) and block.columns.duplicated().any():
            dup = str(block.columns[block.columns.duplicated()][0])
            raise InputError(f"column {dup} appears twice in data_{name}", file=path,
                             field=dup, expected="each loop column once")
    return dict(blocks)


def _format_float(value: float) -> str:
    """12 significant digits, always recognisable as a float (``0`` is written ``0.0``)."""
    text = FLOAT_FORMAT % value
    if not any(ch in text for ch in ".eEnN"):  # no '.', exponent, nan or inf
        text += ".0"
    return text


def _format_block(block: Block) -> Block:
    if isinstance(block, pd.DataFrame):
        out = block.copy()
        for col in out.columns:
            if out[col].dtype.kind == "f":
                out[col] = [_format_float(v) for v in out[col].to_numpy()]
        return out
    return {k: _format_float(v) if isinstance(v, float) else v for k, v in block.items()}


def write_star(path: str | Path, blocks: dict[str, Block]) -> Path:
    """Write data blocks to a STAR file atomically.

    Floats are written with 12 significant digits and always with a decimal point or exponent,
    so every value (and every column's float/int type) reads back unchanged.
    """
    path = Path(path)
    if any(_streamable(b) for b in blocks.values()):
        return _write_star_streaming(path, blocks)
    formatted = {name: _format_block(b) for name, b in blocks.items()}
    with atomic_path(path) as tmp:
        starfile.write(formatted, tmp, overwrite=True)
    return path


#: Loops longer than this are written in row chunks (bounded memory for 10⁵–10⁶ particles).
STREAM_ROWS = 20000


def _streamable(block: Block) -> bool:
    """A long loop whose strings need no quoting (no whitespace, quotes or empty values)."""
    if not isinstance(block, pd.DataFrame) or len(block) <= STREAM_ROWS or block.shape[1] == 0:
        return False
    for col in block.columns:
        if block[col].dtype.kind in "OSU":
            v = block[col].astype(str)
            if (v.str.len() == 0).any() or v.str.contains(r"[\s'\"]", regex=True).any():
                return False
    return True


def _write_star_streaming(path: Path, blocks: dict[str, Block], chunk: int = 5000) -> Path:
    """Write blocks with long loops formatted ``chunk`` rows at a time (same text format)."""
    import tempfile

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("# Created by cryoframe (streamed STAR writer)\n\n")
        for name, block in blocks.items():
            if _streamable(block):
                fh.write(f"data_{name}\n\nloop_\n")
                for i, col in enumerate(block.columns, start=1):
                    fh.write(f"_{col} #{i}\n")
                for s0 in range(0, len(block), chunk):
                    part = _format_block(block.iloc[s0:s0 + chunk])
                    cols = [part[c].astype(str).to_numpy() for c in part.columns]
                    fh.write("\n".join("\t".join(row) for row in zip(*cols)) + "\n")
                fh.write("\n\n")
            else:  # small block: let starfile format it, then copy its text
                with tempfile.TemporaryDirectory() as d:
                    one = Path(d) / "b.star"
                    starfile.write({name: _format_block(block)}, one, overwrite=True)
                    fh.write(one.read_text(encoding="utf-8") + "\n")
    return path


@dataclass
class ParticleTable:
    """A RELION particle table with optics columns merged into every particle.

    Attributes
    ----------
    particles : pandas.DataFrame
        One row per particle; for 3.1+ files the optics columns of its group are included.
    optics : pandas.DataFrame or None
        The original optics block (None for RELION 3.0 files).
    optics_columns : tuple of str
        Columns that came from the optics block (besides ``rlnOpticsGroup``).
    blocks : dict
        All blocks in file order; the particle and optics blocks are re-made on write.
    particles_block, optics_block : str
        Names of those blocks.
    source : Path or None
        File the table was read from.
    """

    particles: pd.DataFrame
    optics: pd.DataFrame | None = None
    optics_columns: tuple[str, ...] = ()
    blocks: dict[str, Block] = field(default_factory=dict)
    particles_block: str = "particles"
    optics_block: str | None = None
    source: Path | None = None

    @property
    def version(self) -> str:
        """``"3.0"`` (single block) or ``"3.1+"`` (optics + particles)."""
        return "3.0" if self.optics is None else "3.1+"

    def __len__(self) -> int:
        return len(self.particles)


def _pick_particles_block(path: Path, blocks: dict[str, Block]) -> str:
    frames = [k for k, v in blocks.items() if isinstance(v, pd.DataFrame)]
    if "particles" in blocks and isinstance(blocks["particles"], pd.DataFrame):
        return "particles"
    non_optics = [k for k in frames if k != "optics"]
    if len(non_optics) == 1:
        return non_optics[0]
    raise InputError(f"cannot find the particle loop among blocks {list(blocks)}", file=path,
                     field="data_particles", expected="a data_particles loop (or one loop)")


def read_particles(path: str | Path) -> ParticleTable:
    """Read a RELION 3.0 or 3.1–5 particle STAR file, merging optics into each particle.

    Parameters
    ----------
    path : str or Path
        Particle STAR file (2D particles, RELION-5 tomography particles, ...).

    Returns
    -------
    ParticleTable

    Raises
    ------
    InputError
        No particle loop, no ``rlnImageName``/``rlnCoordinateX`` column, optics groups missing
        from the optics block or defined twice.
    """
    path = Path(path)
    blocks = read_star(path)
    pname = _pick_particles_block(path, blocks)
    particles = blocks[pname]
    assert isinstance(particles, pd.DataFrame)
    if "rlnImageName" not in particles.columns and "rlnCoordinateX" not in particles.columns:
        raise InputError("not a particle table", file=path, field="rlnImageName",
                         expected="a loop with rlnImageName or rlnCoordinateX/Y(/Z)")
    optics = blocks.get("optics")
    if not isinstance(optics, pd.DataFrame):
        return ParticleTable(particles=particles.reset_index(drop=True), blocks=blocks,
                             particles_block=pname, source=path)
    require_columns(optics, ["rlnOpticsGroup"], file=path, what="data_optics")
    require_columns(particles, ["rlnOpticsGroup"], file=path, what="data_particles")
    if optics["rlnOpticsGroup"].duplicated().any():
        dup = optics["rlnOpticsGroup"][optics["rlnOpticsGroup"].duplicated()].iloc[0]
        raise InputError(f"optics group {dup} defined twice", file=path, field="rlnOpticsGroup",
                         expected="unique optics group numbers in data_optics")
    unknown = set(particles["rlnOpticsGroup"]) - set(optics["rlnOpticsGroup"])
    if unknown:
        raise InputError(f"particles refer to undefined optics group(s) {sorted(unknown)}",
                         file=path, field="rlnOpticsGroup",
                         expected=f"one of {sorted(optics['rlnOpticsGroup'].tolist())}")
    optics_columns = tuple(
        c for c in optics.columns if c != "rlnOpticsGroup" and c not in particles.columns
    )
    merged = particles.merge(optics[["rlnOpticsGroup", *optics_columns]], on="rlnOpticsGroup",
                             how="left", sort=False)
    return ParticleTable(particles=merged, optics=optics, optics_columns=optics_columns,
                         blocks=blocks, particles_block=pname, optics_block="optics",
                         source=path)


def _split_optics(table: ParticleTable, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert table.optics is not None
    cols = [c for c in table.optics.columns if c == "rlnOpticsGroup" or c in table.optics_columns]
    present = [c for c in cols if c in table.particles.columns]
    per_group = table.particles[present]
    n_unique = per_group.groupby("rlnOpticsGroup", sort=False).nunique(dropna=False)
    if (n_unique > 1).any().any():
        bad = n_unique.columns[(n_unique > 1).any()][0]
        raise InputError("an optics column varies within an optics group", file=path, field=bad,
                         expected="one value per rlnOpticsGroup (or a new optics group)")
    from_particles = per_group.drop_duplicates("rlnOpticsGroup").set_index("rlnOpticsGroup")
    optics_out = table.optics.copy()
    known = set(optics_out["rlnOpticsGroup"])
    new_rows = []
    for group, values in from_particles.iterrows():
        if group in known:
            row = optics_out["rlnOpticsGroup"] == group
            for col, val in values.items():
                if optics_out.loc[row, col].iloc[0] != val:
                    optics_out.loc[row, col] = val
        else:
            new_rows.append({"rlnOpticsGroup": group, **values.to_dict()})
    if new_rows:
        optics_out = pd.concat([optics_out, pd.DataFrame(new_rows)], ignore_index=True)
    particles_out = table.particles.drop(columns=list(table.optics_columns), errors="ignore")
    return optics_out, particles_out


def write_particles(path: str | Path, table: ParticleTable) -> Path:
    """Write a particle table, splitting merged optics columns back into ``data_optics``.

    Blocks other than optics/particles are rewritten unchanged and in their original order.
    """
    path = Path(path)
    blocks: dict[str, Block] = dict(table.blocks) if table.blocks else {}
    if table.optics is not None:
        optics_out, particles_out = _split_optics(table, path)
        blocks[table.optics_block or "optics"] = optics_out
        blocks[table.particles_block] = particles_out
    else:
        blocks[table.particles_block] = table.particles
    return write_star(path, blocks)


def pixel_size_angstrom(table: ParticleTable | pd.DataFrame, *, file: str | Path | None = None,
                        ) -> np.ndarray:
    """Per-particle image pixel size in Å, `(n,)`.

    ``rlnImagePixelSize`` if present, else ``rlnDetectorPixelSize`` [µm] · 10⁴ /
    ``rlnMagnification`` (RELION 3.0).
    """
    df = table.particles if isinstance(table, ParticleTable) else table
    if file is None and isinstance(table, ParticleTable):
        file = table.source
    if "rlnImagePixelSize" in df.columns:
        return df["rlnImagePixelSize"].to_numpy(dtype=np.float64)
    if "rlnDetectorPixelSize" in df.columns and "rlnMagnification" in df.columns:
        return (df["rlnDetectorPixelSize"].to_numpy(np.float64) * 1e4
                / df["rlnMagnification"].to_numpy(np.float64))
    raise InputError("no pixel size", file=file, field="rlnImagePixelSize",
                     expected="rlnImagePixelSize, or rlnDetectorPixelSize and rlnMagnification")


def table_pixel_size(table: ParticleTable) -> float | None:
    """One pixel (voxel) size for the whole table, in Å, else ``None``.

    The first finite positive value of ``rlnImagePixelSize`` / ``rlnTomoSubtomogramPixelSize`` /
    ``rlnPixelSize`` in the particle columns or the optics groups (subtomogram tables); use
    :func:`pixel_size_angstrom` for per-particle values of 2D stacks.
    """
    df = table.particles
    for col in ("rlnImagePixelSize", "rlnTomoSubtomogramPixelSize", "rlnPixelSize"):
        for frame in (df, table.optics):
            if frame is not None and col in frame.columns and len(frame):
                v = float(frame[col].iloc[0])
                if np.isfinite(v) and v > 0:
                    return v
    return None


def _origin_angstrom(df: pd.DataFrame, file: Path | None,
                     pixel_size: float | np.ndarray | None, table: Any) -> np.ndarray:
    """RELION origins as `(n, 3)` zyx in Å (zeros where absent)."""
    n = len(df)
    out = np.zeros((n, 3))
    axes = {"Z": 0, "Y": 1, "X": 2}
    if any(f"rlnOrigin{a}Angst" in df.columns for a in axes):
        for a, i in axes.items():
            if f"rlnOrigin{a}Angst" in df.columns:
                out[:, i] = df[f"rlnOrigin{a}Angst"].to_numpy(np.float64)
    elif any(f"rlnOrigin{a}" in df.columns for a in axes):
        px = pixel_size if pixel_size is not None else pixel_size_angstrom(table, file=file)
        for a, i in axes.items():
            if f"rlnOrigin{a}" in df.columns:
                out[:, i] = df[f"rlnOrigin{a}"].to_numpy(np.float64) * px
    return out


def poses_from_particles(
    table: ParticleTable | pd.DataFrame, pixel_size_angstrom: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Particle poses as cryoframe rotation matrices and shifts in Å.

    Parameters
    ----------
    table : ParticleTable or pandas.DataFrame
        Needs ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` [deg]; origins are optional
        (zero when absent).
    pixel_size_angstrom : float, optional
        Pixel size for RELION 3.0 origins in pixels, overriding the table's own.

    Returns
    -------
    rotations : torch.Tensor
        `(n, 3, 3)` float64 active rotations acting on zyx column vectors.
    shifts_zyx_angstrom : torch.Tensor
        `(n, 3)` float64 particle centre minus box centre, Å, zyx (= −rlnOrigin; z = 0 for 2D).
    """
    df = table.particles if isinstance(table, ParticleTable) else table
    file = table.source if isinstance(table, ParticleTable) else None
    require_columns(df, ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"], file=file,
                    what="particle table")
    for col in ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"):
        if col in df.columns and np.any(df[col].to_numpy(np.float64) != 0):
            raise InputError(
                "poses relative to pseudo-subtomogram orientations are not supported", file=file,
                field=col, expected="absolute rlnAngleRot/Tilt/Psi (rlnTomoSubtomogram* = 0)")
    angles = torch.tensor(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]]
                          .to_numpy(np.float64, copy=True))
    rotations = relion_euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    origin = _origin_angstrom(df, file, pixel_size_angstrom, table)
    shifts = 0.0 - origin + 0.0  # + 0.0 turns -0.0 into 0.0
    return torch.as_tensor(rotations, dtype=torch.float64), torch.as_tensor(shifts)


def particles_with_poses(
    table: ParticleTable | pd.DataFrame,
    rotations: Any,
    shifts_zyx_angstrom: Any,
    pixel_size_angstrom: float | None = None,
) -> pd.DataFrame:
    """Copy of the particle DataFrame with poses written into RELION columns.

    The inverse of :func:`poses_from_particles`: sets ``rlnAngleRot/Tilt/Psi`` and the origins
    (``rlnOriginX/Y[/Z]Angst`` = −shift; for tables that store pixel origins ``rlnOriginX/Y[/Z]``
    in pixels instead). ``rlnOriginZ*`` is written for 3D tables (with ``rlnCoordinateZ`` or a
    z origin) and whenever a z shift is non-zero.

    Parameters
    ----------
    rotations : array-like
        `(n, 3, 3)` active rotations acting on zyx column vectors.
    shifts_zyx_angstrom : array-like
        `(n, 3)` particle centre minus box centre, Å, zyx.
    """
    df = (table.particles if isinstance(table, ParticleTable) else table).copy()
    file = table.source if isinstance(table, ParticleTable) else None
    rot = torch.as_tensor(np.asarray(rotations), dtype=torch.float64)
    shifts = np.asarray(shifts_zyx_angstrom, dtype=np.float64).reshape(-1, 3)
    if rot.shape != (len(df), 3, 3) or shifts.shape != (len(df), 3):
        raise InputError(f"got rotations {tuple(rot.shape)} and shifts {shifts.shape}",
                         file=file, field="poses", expected=f"({len(df)}, 3, 3) and ({len(df)}, 3)")
    rot_deg, tilt_deg, psi_deg = matrix_to_relion_euler(rot)
    df["rlnAngleRot"] = np.asarray(rot_deg, dtype=np.float64)
    df["rlnAngleTilt"] = np.asarray(tilt_deg, dtype=np.float64)
    df["rlnAnglePsi"] = np.asarray(psi_deg, dtype=np.float64)
    origin = -shifts
    is_3d = ("rlnCoordinateZ" in df.columns or "rlnOriginZAngst" in df.columns
             or "rlnOriginZ" in df.columns or bool(np.any(origin[:, 0] != 0)))
    axes = [("Z", 0), ("Y", 1), ("X", 2)] if is_3d else [("Y", 1), ("X", 2)]
    pixel_origins = "rlnOriginX" in df.columns and "rlnOriginXAngst" not in df.columns
    if pixel_origins:
        px: Any = pixel_size_angstrom
        if px is None:
            px = _table_pixel_size(table, file)
        for a, i in axes:
            df[f"rlnOrigin{a}"] = origin[:, i] / px
    else:
        for a, i in axes:
            df[f"rlnOrigin{a}Angst"] = origin[:, i]
    return df


def _table_pixel_size(table: Any, file: Path | None) -> np.ndarray:
    """:func:`pixel_size_angstrom` (shadowed by the argument of the same name above)."""
    return pixel_size_angstrom(table, file=file)


# --------------------------------------------------------------------------- tomography tables


@dataclass
class TomogramTable:
    """RELION-5 tomogram set: the global table plus per-tilt-series tables.

    Attributes
    ----------
    tomograms : pandas.DataFrame
        ``data_global``: one row per tomogram (``rlnTomoName``, ``rlnTomoTiltSeriesPixelSize``,
        ``rlnTomoSizeX/Y/Z`` ...).
    tilt_series : dict of str to pandas.DataFrame
        Per-tomogram tilt tables keyed by ``rlnTomoName`` (blocks of the same file, or the files
        named by ``rlnTomoTiltSeriesStarFile`` when they can be found).
    source : Path or None
        File read.
    """

    tomograms: pd.DataFrame
    tilt_series: dict[str, pd.DataFrame] = field(default_factory=dict)
    source: Path | None = None

    def pixel_size_angstrom(self, tomo_name: str) -> float:
        """Tilt-series pixel size of one tomogram in Å."""
        require_columns(self.tomograms, ["rlnTomoTiltSeriesPixelSize"], file=self.source,
                        what="data_global")
        row = self.tomograms[self.tomograms["rlnTomoName"] == tomo_name]
        if row.empty:
            raise InputError(f"unknown tomogram '{tomo_name}'", file=self.source,
                             field="rlnTomoName",
                             expected=f"one of {self.tomograms['rlnTomoName'].tolist()}")
        return float(row["rlnTomoTiltSeriesPixelSize"].iloc[0])


def _find_relative(star_path: Path, ref: str) -> Path | None:
    """RELION paths are relative to the project directory: try the star file's ancestors."""
    cand = Path(ref)
    if cand.is_absolute():
        return cand if cand.is_file() else None
    for base in [star_path.parent, *star_path.parents]:
        if (base / cand).is_file():
            return base / cand
    return None


def read_tilt_series(path: str | Path) -> pd.DataFrame:
    """Read a RELION-5 per-tilt-series STAR file (one loop, one row per tilt image)."""
    path = Path(path)
    blocks = read_star(path)
    frames = [v for v in blocks.values() if isinstance(v, pd.DataFrame)]
    if len(frames) != 1:
        raise InputError(f"expected one tilt loop, found {len(frames)}", file=path,
                         field="data_", expected="a single loop with one row per tilt")
    df = frames[0]
    if not any(c in df.columns for c in ("rlnTomoNominalStageTiltAngle", "rlnMicrographName",
                                         "rlnTomoProjX")):
        raise InputError("not a tilt-series table", file=path,
                         field="rlnTomoNominalStageTiltAngle",
                         expected="RELION-5 tilt-series columns (rlnMicrographName, ...)")
    return df


def read_tomograms(path: str | Path, load_tilt_series: bool = True) -> TomogramTable:
    """Read a RELION-5 (or RELION-4 / WarpTools) ``tomograms.star``.

    Parameters
    ----------
    path : str or Path
        File with a ``data_global`` loop (``rlnTomoName`` required).
    load_tilt_series : bool
        Also read the tilt-series tables: blocks named after each tomogram in the same file,
        or files named in ``rlnTomoTiltSeriesStarFile`` (searched relative to the star file and
        its ancestor directories, as RELION paths are project-relative). Files not found are
        skipped.
    """
    path = Path(path)
    blocks = read_star(path)
    glob_block = blocks.get("global")
    if not isinstance(glob_block, pd.DataFrame):
        raise InputError("no data_global loop", file=path, field="data_global",
                         expected="a RELION tomograms.star with a data_global loop")
    require_columns(glob_block, ["rlnTomoName"], file=path, what="data_global")
    tilt: dict[str, pd.DataFrame] = {}
    if load_tilt_series:
        for name in glob_block["rlnTomoName"].astype(str):
            if isinstance(blocks.get(name), pd.DataFrame):
                tilt[name] = blocks[name]  # type: ignore[assignment]
        if "rlnTomoTiltSeriesStarFile" in glob_block.columns:
            for name, ref in zip(glob_block["rlnTomoName"].astype(str),
                                 glob_block["rlnTomoTiltSeriesStarFile"].astype(str), strict=True):
                found = None if name in tilt else _find_relative(path, ref)
                if found is not None:
                    tilt[name] = read_tilt_series(found)
    return TomogramTable(tomograms=glob_block, tilt_series=tilt, source=path)
