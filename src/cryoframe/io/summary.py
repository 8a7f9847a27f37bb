"""Header summaries of the files cryoframe reads (``cryoframe info FILE``).

:func:`describe_file` returns ``(field, value)`` rows for MRC/MRCS maps and stacks (shape, mode,
data type, voxel size, origin, stack or volume, mrcfile's own validation verdict), STAR files
(blocks, rows, columns, optics groups, pixel size), Dynamo ``.tbl`` tables (rows, columns) and
PDB/mmCIF models (models, chains, residues, atoms, cell). Every file goes through the same reader
the commands use, so a file ``info`` accepts is one the commands accept, and a bad file gives the
same :class:`~cryoframe.InputError`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from cryoframe._errors import InputError
from cryoframe.io.dynamo import read_tbl
from cryoframe.io.mrc import read_mrc, read_mrc_header
from cryoframe.io.star import read_star
from cryoframe.io.structures import read_structure

__all__ = ["describe_file", "file_kind"]

_MRC = {".mrc", ".mrcs", ".map", ".rec", ".st", ".ali", ".ccp4"}
_MODEL = {".pdb", ".ent", ".cif", ".mmcif"}


def file_kind(path: str | Path) -> str:
    """``"mrc"``, ``"star"``, ``"tbl"`` or ``"model"`` from the suffix (``.gz`` ignored)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in _MRC:
        return "mrc"
    if ext == ".star":
        return "star"
    if ext == ".tbl":
        return "tbl"
    if ext in _MODEL:
        return "model"
    raise InputError(f"unknown file type '{ext or p.name}'", file=p, field="suffix",
                     expected="one of .mrc .mrcs .map .rec .star .tbl .pdb .cif (optionally .gz)")


def _mrc_rows(path: Path) -> list[tuple[str, str]]:
    import mrcfile


    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vol = read_mrc(path, mmap=True, check_finite=False)  # full size check, lazy data
    try:
        hdr = read_mrc_header(path)
    except InputError:  # a pre-2014 file without the 'MAP ' stamp that read_mrc accepted
        hdr = read_mrc_header(path, _raw=True)
    buf = io.StringIO()
    try:
        valid = bool(mrcfile.validate(str(path), print_file=buf))
    except Exception as exc:  # noqa: BLE001 - the validator itself may fail on odd files
        valid, buf = False, io.StringIO(f"validator failed: {exc}")
    notes = "; ".join(line.strip() for line in buf.getvalue().splitlines() if line.strip())
    vz, vy, vx = hdr.voxel_size_zyx_angstrom
    return [
        ("format", "MRC image stack" if hdr.is_image_stack else "MRC volume/image"),
        ("shape (z, y, x)", str(hdr.shape_zyx)),
        ("data shape", str(tuple(vol.data.shape))),
        ("mode", f"{hdr.mode} ({hdr.dtype})"),
        ("voxel size (Å, z y x)", f"{vz:.4g} {vy:.4g} {vx:.4g}"
         + ("" if vx > 0 else " (unset: read as 1.0)")),
        ("origin (Å, z y x)", " ".join(f"{v:.4g}" for v in hdr.origin_zyx_angstrom)),
        ("data offset (bytes)", str(hdr.data_offset_bytes)),
        ("mrcfile validation", "passed" if valid else f"issues: {notes[:300]}"),
    ]


def _star_rows(path: Path) -> list[tuple[str, str]]:
    import pandas as pd


    blocks = read_star(path)
    rows: list[tuple[str, str]] = [("format", "STAR"), ("blocks", ", ".join(
        f"data_{k}" for k in blocks))]
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame):
            cols = list(block.columns)
            rows.append((f"data_{name}", f"{len(block)} rows × {len(cols)} columns: "
                         + ", ".join(cols[:12]) + (" …" if len(cols) > 12 else "")))
        else:
            rows.append((f"data_{name}", f"{len(block)} key/value pairs"))
    optics = blocks.get("optics")
    if isinstance(optics, pd.DataFrame):
        rows.append(("optics groups", str(len(optics))))
        for col in ("rlnImagePixelSize", "rlnTomoTiltSeriesPixelSize", "rlnPixelSize"):
            if col in optics.columns:
                vals = sorted(set(float(v) for v in optics[col]))
                rows.append(("pixel size (Å)", ", ".join(f"{v:g}" for v in vals)))
                break
    return rows


def _tbl_rows(path: Path) -> list[tuple[str, str]]:

    df = read_tbl(path)
    cols = list(df.columns)
    rows = [("format", "Dynamo table"), ("rows", str(len(df))),
            ("columns", f"{len(cols)}: " + ", ".join(cols[:12]) + (" …" if len(cols) > 12
                                                                    else ""))]
    if "tomo" in df.columns and len(df):
        rows.append(("tomograms", str(df["tomo"].nunique())))
    return rows


def _model_rows(path: Path) -> list[tuple[str, str]]:
    import gemmi


    atoms = read_structure(path)  # same checks as the simulators
    st = gemmi.read_structure(str(path))
    mdl = st[0]
    cell = st.cell
    return [
        ("format", "mmCIF" if file_kind(path) == "model" and ".cif" in path.name.lower()
         else "PDB"),
        ("models", str(len(st))),
        ("chains", f"{len(mdl)}: " + ", ".join(ch.name for ch in list(mdl)[:20])),
        ("residues", str(sum(len(ch) for ch in mdl))),
        ("atoms (model 1)", str(len(atoms.coords_zyx_angstrom))),
        ("cell (Å)", f"{cell.a:.4g} {cell.b:.4g} {cell.c:.4g}"),
    ]


def describe_file(path: str | Path) -> list[tuple[str, str]]:
    """Header summary rows of an MRC/MRCS, STAR, tbl or PDB/mmCIF file.

    Raises
    ------
    InputError
        Missing file, unknown type, or a file its reader refuses.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", file=p, field="path", expected="an existing file")
    kind = file_kind(p)
    rows = {"mrc": _mrc_rows, "star": _star_rows, "tbl": _tbl_rows, "model": _model_rows}[kind](p)
    return [("file", str(p)), ("size (bytes)", str(p.stat().st_size)), *rows]
