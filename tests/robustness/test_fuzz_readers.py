"""Quick reader fuzzing (the full 1,000-per-format run is ``cryoframe bench robustness``).

Every mutant of the real files in ``tests/data`` is either read (and passes the format's
invariants) or refused with ``InputError``; any other exception is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cryoframe.bench.robustness import fuzz_sources
from cryoframe.testing.fuzz import check_reader, fuzz_files

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("fmt", ["mrc", "star", "tbl", "pdb"])
def test_quick_fuzz(fmt, tmp_path):
    sources = fuzz_sources(DATA, tmp_path)[fmt]
    for path, particles in sources:  # the originals are read
        assert check_reader(path, fmt, particles).kind == "read", path
    res = fuzz_files(sources, fmt, 80, seed=3, work_dir=tmp_path / "m")
    assert res["failures"] == 0, res["examples"]
    assert res["refused"] > 0 and res["read"] > 0  # the mutator really breaks files


def test_duplicate_star_column_is_refused(tmp_path):
    from cryoframe._errors import InputError
    from cryoframe.io.star import read_star

    p = tmp_path / "dup.star"
    p.write_text("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroup #2\n1 1\n")
    with pytest.raises(InputError) as ei:
        read_star(p)
    assert ei.value.field == "rlnOpticsGroup"


def test_non_finite_atom_coordinates_are_refused(tmp_path):
    from cryoframe._errors import InputError
    from cryoframe.io.structures import read_structure

    lines = (DATA / "structures" / "1ake.pdb").read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("ATOM"))
    lines[i] = lines[i][:30] + "     nan" + lines[i][38:]
    p = tmp_path / "nan.pdb"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as ei:
        read_structure(p)
    assert ei.value.field == "x/y/z"
