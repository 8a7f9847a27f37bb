"""``cryoframe convert``: subtomogram tables between RELION STAR and Dynamo ``.tbl``."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoframe._errors import InputError
from cryoframe.cli import _options as opt
from cryoframe.io.dynamo import read_tbl, read_tomogram_doc, write_tbl, write_tomogram_doc
from cryoframe.io.star import read_particles, write_particles
from cryoframe.io.subtomo_table import (
    subtomo_from_dynamo,
    subtomo_from_relion,
    subtomo_to_dynamo,
    subtomo_to_relion,
)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".star":
        return "star"
    if suffix == ".tbl":
        return "tbl"

    raise InputError(f"unknown table format '{suffix}'", file=path, field="suffix",
                     expected=".star (RELION) or .tbl (Dynamo)")


def convert_table(
    src: Path, dst: Path, pixel_size_angstrom: float | None = None,
    tomograms: Path | None = None,
) -> tuple[int, Path | None]:
    """Convert a subtomogram table between RELION STAR and Dynamo ``.tbl``.

    STAR → tbl also writes the Dynamo volume list ``<dst stem>.doc`` (tomogram index → name);
    tbl → STAR reads ``tomograms`` (or ``<src stem>.doc`` next to the table when it exists) to
    restore tomogram names.

    Returns
    -------
    n : int
        Number of particles converted.
    doc : Path or None
        Volume list written, if any.
    """
    from cryoframe._errors import InputError

    k_in, k_out = _kind(src), _kind(dst)
    if k_in == k_out:
        raise InputError("input and output have the same format", file=dst, field="OUT",
                         expected=f"a {'.tbl' if k_in == 'star' else '.star'} output")
    if k_in == "star":
        table = read_particles(src)
        canon = subtomo_from_relion(table, pixel_size_angstrom)
        if pixel_size_angstrom is None:
            sizes = table.particles["rlnTomoTiltSeriesPixelSize"].unique()
            if len(sizes) != 1:
                raise InputError(f"optics groups have different pixel sizes {list(sizes)}",
                                 file=src, field="rlnTomoTiltSeriesPixelSize",
                                 expected="one pixel size, or --pixel-size")
            pixel_size_angstrom = float(sizes[0])
        tbl, index = subtomo_to_dynamo(canon, pixel_size_angstrom)
        doc = dst.with_suffix(".doc")
        write_tbl(dst, tbl)
        write_tomogram_doc(doc, index)
        return len(tbl), doc
    tbl = read_tbl(src)
    if tomograms is None and src.with_suffix(".doc").is_file():
        tomograms = src.with_suffix(".doc")
    names = read_tomogram_doc(tomograms) if tomograms is not None else None
    canon = subtomo_from_dynamo(tbl, pixel_size_angstrom, names, file=src)
    if pixel_size_angstrom is None:
        pixel_size_angstrom = float(tbl["apix"].iloc[0])
        if not (tbl["apix"] == pixel_size_angstrom).all():
            raise InputError("rows have different apix values", file=src, field="apix",
                             expected="one pixel size, or --pixel-size")
    write_particles(dst, subtomo_to_relion(canon, pixel_size_angstrom))
    return len(canon), None


def convert(
    src: Path = typer.Argument(..., help="Input table: RELION .star or Dynamo .tbl."),
    dst: Path = typer.Argument(..., help="Output table: .tbl or .star (the other format)."),
    pixel_size: float | None = opt.pixel_size(help="Å per pixel of the coordinates (tomogram/tilt-series "
        "pixels). Default: rlnTomoTiltSeriesPixelSize of the STAR, or apix of the tbl."),
    tomograms: Path | None = typer.Option(
        None, "--tomograms", help="Dynamo volume list (.doc: 'index name' lines) naming the "
        "tomograms of a .tbl; default <IN>.doc when it exists."),
) -> None:
    """Convert a subtomogram table between RELION STAR and Dynamo tbl (poses via matrices)."""
    from rich.console import Console

    n, doc = convert_table(src, dst, pixel_size, tomograms)
    extra = f" and volume list {doc}" if doc is not None else ""
    Console().print(f"wrote {n} particles to {dst}{extra}")


def register(app: typer.Typer) -> None:
    """Add the ``convert`` command."""
    app.command("convert", epilog=opt.example(
        "cryoframe convert particles.star particles.tbl --pixel-size 10"))(convert)
