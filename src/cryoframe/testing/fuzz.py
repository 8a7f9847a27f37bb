"""Seeded mutation fuzzing of cryoframe's file readers (MRC, STAR, Dynamo tbl, PDB/mmCIF).

:func:`mutate` turns the bytes of a real file into a mutant with one to three operations drawn
from generic ones (bit flips, truncation, byte insertion/deletion, chunk duplication) and
format-aware ones (MRC header fields set to edge values; STAR tokens, loop headers and block names
replaced or dropped; tbl columns deleted, duplicated or filled with non-numbers; PDB/mmCIF
coordinate columns, record names and lines mangled). :func:`check_reader` reads one mutant with
the reader the commands use and classifies the outcome:

* ``"read"`` — the reader returned, and the result passes the format's invariants (finite data
  of the shape the header gives, positive voxel size; non-empty tables; atoms with finite
  coordinates);
* ``"refused"`` — the reader raised :class:`~cryoframe.InputError`;
* ``"failure"`` — anything else: another exception type, or a returned result that breaks the
  invariants. The contract (issue 15) is zero failures.
"""

from __future__ import annotations

import random
import struct
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoframe._errors import InputError
from cryoframe.io.dynamo import read_tbl
from cryoframe.io.mrc import read_mrc
from cryoframe.io.star import read_particles, read_star
from cryoframe.io.structures import read_structure

__all__ = ["FORMATS", "mutate", "check_reader", "FuzzOutcome", "fuzz_files"]

FORMATS = ("mrc", "star", "tbl", "pdb")

_EDGE_INTS = [0, 1, -1, 2, 3, 4, 5, 6, 7, 12, 16, 101, 255, 1024, 65535, 2**31 - 1, -2**31,
              2**20, 7**7]
_EDGE_FLOATS = [0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 3.4e38]
_JUNK = ["nan", "inf", "-inf", "", "x", "1e999", "--", "#", "data_", "loop_", "_rln", "\x00",
         "0+1i", "1,5", "'", '"', "1e-400", "9" * 40, "\u00e9"]


# ------------------------------------------------------------------ generic byte operations
def _bitflip(b: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)


def _truncate(b: bytearray, rng: random.Random) -> None:
    del b[rng.randrange(len(b)):]


def _insert(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b) + 1)
    b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def _delete(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b))
    del b[i:i + rng.randint(1, 64)]


def _duplicate(b: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(b))
    chunk = b[i:i + rng.randint(1, 256)]
    j = rng.randrange(len(b) + 1)
    b[j:j] = chunk


_GENERIC = [_bitflip, _truncate, _insert, _delete, _duplicate]


# ------------------------------------------------------------------ format-aware operations
def _mrc_header(b: bytearray, rng: random.Random) -> None:
    if len(b) < 1024:
        return _bitflip(b, rng)
    word = rng.choice(list(range(0, 56)) + [0, 1, 2, 3, 3, 3, 7, 8, 9, 10, 11, 12, 23])
    off = 4 * word
    if word in (10, 11, 12, 49, 50, 51, 54) and rng.random() < 0.7:  # cella, origin, rms
        b[off:off + 4] = struct.pack("<f", rng.choice(_EDGE_FLOATS))
    elif word == 52:  # machine stamp
        b[off:off + 4] = bytes(rng.choice([(0x44, 0x44, 0, 0), (0x11, 0x11, 0, 0),
                                           (0, 0, 0, 0), (0xFF, 0xFF, 0xFF, 0xFF)]))
    else:
        b[off:off + 4] = struct.pack("<i", rng.choice(_EDGE_INTS))


def _text_lines(b: bytearray) -> list[bytes]:
    return bytes(b).split(b"\n")


def _set_lines(b: bytearray, lines: list[bytes]) -> None:
    b[:] = b"\n".join(lines)


def _token_edit(b: bytearray, rng: random.Random) -> None:
    lines = _text_lines(b)
    cand = [i for i, ln in enumerate(lines) if ln.split()]
    if not cand:
        return _bitflip(b, rng) if b else None
    i = rng.choice(cand)
    toks = lines[i].split()
    j = rng.randrange(len(toks))
    op = rng.random()
    if op < 0.5:
        toks[j] = rng.choice(_JUNK).encode()
    elif op < 0.7:
        del toks[j]
    elif op < 0.85:
        toks.insert(j, rng.choice(_JUNK + ["1", "0", "-5"]).encode())
    else:
        toks = toks + toks[: rng.randint(1, len(toks))]
    lines[i] = b" ".join(t for t in toks)
    _set_lines(b, lines)


def _line_edit(b: bytearray, rng: random.Random) -> None:
    lines = _text_lines(b)
    if not lines:
        return
    i = rng.randrange(len(lines))
    op = rng.random()
    if op < 0.4:
        del lines[i]
    elif op < 0.7:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif op < 0.85:
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    else:
        lines.insert(i, rng.choice([b"data_", b"loop_", b"_rlnImageName #1", b"data_x",
                                    b"_rlnX", b"loop_\n_a #1\n1 2 3", b"END", b"MODEL 2",
                                    b"ENDMDL", b"\x00\xff"]))
    _set_lines(b, lines)


def _star_structure(b: bytearray, rng: random.Random) -> None:
    lines = _text_lines(b)
    idx = [i for i, ln in enumerate(lines) if ln.startswith((b"_", b"loop_", b"data_"))]
    if not idx:
        return _token_edit(b, rng)
    i = rng.choice(idx)
    op = rng.random()
    if op < 0.3:
        del lines[i]
    elif op < 0.6:
        lines[i] = lines[i].replace(b"_rln", b"_rl", 1) if b"_rln" in lines[i] \
            else lines[i] + b"x"
    else:
        lines.insert(i, lines[i])  # duplicated header or column
    _set_lines(b, lines)


def _tbl_column(b: bytearray, rng: random.Random) -> None:
    lines = [ln for ln in _text_lines(b)]
    rows = [i for i, ln in enumerate(lines) if ln.split()]
    if not rows:
        return
    col = rng.randrange(max(1, len(lines[rows[0]].split())))
    op = rng.random()
    targets = rows if rng.random() < 0.5 else [rng.choice(rows)]
    for i in targets:
        toks = lines[i].split()
        if col >= len(toks):
            continue
        if op < 0.3:
            del toks[col]
        elif op < 0.5:
            toks.insert(col, toks[col])
        else:
            toks[col] = rng.choice(_JUNK + ["1e308", "-0", "3+4i", "1e-5-2e-3j"]).encode()
        lines[i] = b" ".join(toks)
    _set_lines(b, lines)


def _pdb_record(b: bytearray, rng: random.Random) -> None:
    lines = _text_lines(b)
    atoms = [i for i, ln in enumerate(lines) if ln.startswith((b"ATOM", b"HETATM"))]
    if not atoms:
        return _token_edit(b, rng)
    for i in rng.sample(atoms, min(len(atoms), rng.randint(1, 5))):
        ln = bytearray(lines[i].ljust(80))
        op = rng.random()
        if op < 0.4:  # coordinates (columns 31–54)
            s = rng.choice([30, 38, 46])
            ln[s:s + 8] = rng.choice([b"     nan", b"********", b"        ", b"1e999999",
                                      b"-9999999", b"  abc   "])
        elif op < 0.6:  # element / name
            ln[76:78] = rng.choice([b"  ", b"XX", b"Q ", b"\xff\xfe"])
        elif op < 0.8:  # record name
            ln[0:6] = rng.choice([b"ATOM  ", b"HETATM", b"ANISOU", b"TER   ", b"MODEL ",
                                  b"      ", b"ENDMDL"])
        else:  # occupancy / B-factor
            ln[54:66] = rng.choice([b"  nan   nan", b"-1.00 -1.00", b"           ", b"1e99 1e99  "])
        lines[i] = bytes(ln).rstrip()
    _set_lines(b, lines)


_SPECIFIC = {
    "mrc": [_mrc_header, _mrc_header, _mrc_header],
    "star": [_token_edit, _line_edit, _star_structure, _star_structure],
    "tbl": [_tbl_column, _tbl_column, _token_edit, _line_edit],
    "pdb": [_pdb_record, _pdb_record, _token_edit, _line_edit],
}


def mutate(data: bytes, fmt: str, rng: random.Random) -> bytes:
    """One mutant of ``data`` (1–3 operations; format-aware ones drawn 2:1 over generic ones)."""
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not b:
            break
        ops = _SPECIFIC[fmt] * 2 + _GENERIC
        rng.choice(ops)(b, rng)
    return bytes(b)


# ------------------------------------------------------------------ reading and invariants
def _check_mrc(path: Path) -> None:

    vol = read_mrc(path)
    d = vol.data
    assert d.ndim in (2, 3) and d.size > 0, d.shape
    if d.dtype.kind == "f":
        assert np.isfinite(d).all()
    assert np.isfinite(vol.voxel_size_angstrom) and vol.voxel_size_angstrom > 0
    m = read_mrc(path, mmap=True)
    assert m.data.shape == d.shape


def _check_star(path: Path, particles: bool) -> None:
    import pandas as pd


    if particles:
        t = read_particles(path)
        assert isinstance(t.particles, pd.DataFrame)
    else:
        blocks = read_star(path)
        assert blocks and all(isinstance(v, (pd.DataFrame, dict)) for v in blocks.values())


def _check_tbl(path: Path) -> None:

    df = read_tbl(path)
    assert len(df) > 0 and df.shape[1] > 0


def _check_pdb(path: Path) -> None:

    atoms = read_structure(path)
    assert len(atoms.coords_zyx_angstrom) > 0
    assert np.isfinite(atoms.coords_zyx_angstrom).all()


@dataclass(frozen=True)
class FuzzOutcome:
    """Classification of one mutant: ``kind`` is ``read``, ``refused`` or ``failure``."""

    kind: str
    detail: str = ""


def check_reader(path: Path, fmt: str, particles: bool = False) -> FuzzOutcome:
    """Read ``path`` with the format's reader and classify the outcome (module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "mrc":
                _check_mrc(path)
            elif fmt == "star":
                _check_star(path, particles)
            elif fmt == "tbl":
                _check_tbl(path)
            elif fmt == "pdb":
                _check_pdb(path)
            else:
                raise ValueError(f"unknown format {fmt}")
    except InputError:
        return FuzzOutcome("refused")
    except AssertionError as exc:
        return FuzzOutcome("failure", f"invariant broken: {exc}")
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer is looking for
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return FuzzOutcome("failure", f"{type(exc).__name__}: {str(exc)[:160]} "
                           f"({Path(tb.filename).name}:{tb.lineno})")
    return FuzzOutcome("read")


def fuzz_files(sources: list[tuple[Path, bool]], fmt: str, n_mutants: int, seed: int,
               work_dir: Path) -> dict:
    """Mutate ``sources`` (path, is-particle-STAR) round-robin ``n_mutants`` times.

    Returns ``{"mutants", "read", "refused", "failures", "examples"}`` (up to 10 failure
    descriptions with the source file and mutant number).
    """
    rng = random.Random(seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    blobs = [(p, part, p.read_bytes()) for p, part in sources]
    counts = {"read": 0, "refused": 0, "failure": 0}
    examples: list[str] = []
    for i in range(n_mutants):
        src, part, data = blobs[i % len(blobs)]
        mutant = work_dir / f"m{i % 7}{''.join(src.suffixes)}"
        mutant.write_bytes(mutate(data, fmt, rng))
        out = check_reader(mutant, fmt, part)
        counts[out.kind] += 1
        if out.kind == "failure" and len(examples) < 10:
            examples.append(f"{src.name} #{i}: {out.detail}")
    return {"mutants": n_mutants, "read": counts["read"], "refused": counts["refused"],
            "failures": counts["failure"], "examples": examples}
