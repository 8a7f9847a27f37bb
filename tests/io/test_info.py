"""``cryoframe info FILE``: header summaries through the same readers the commands use."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryoframe._errors import InputError
from cryoframe.cli.main import main
from cryoframe.io.mrc import write_mrc
from cryoframe.io.summary import describe_file

DATA = Path(__file__).resolve().parents[1] / "data"


def _rows(path) -> dict:
    return dict(describe_file(path))


def test_mrc_summary():
    r = _rows(DATA / "EMD-3197.map")
    assert r["shape (z, y, x)"] == "(20, 20, 20)" and r["mode"].startswith("2 ")
    assert r["voxel size (Å, z y x)"].split()[:3] == ["11.4", "11.4", "11.4"]
    assert "nversion" in r["mrcfile validation"]  # mrcfile's validator speaks


def test_valid_mrc_passes_validation(tmp_path):
    p = write_mrc(tmp_path / "v.mrc", np.ones((4, 6, 8), np.float32), 2.5)
    r = _rows(p)
    assert r["shape (z, y, x)"] == "(4, 6, 8)" and r["mrcfile validation"] == "passed"


def test_star_tbl_and_model_summaries():
    r = _rows(DATA / "particles" / "relion31" / "relion31.star")
    assert r["optics groups"] == "1" and r["pixel size (Å)"] == "2.806"
    assert r["data_particles"].startswith("5 rows")
    r = _rows(DATA / "dynamo" / "t_double.tbl")
    assert r["rows"] == "300" and r["columns"].startswith("35:")
    r = _rows(DATA / "structures" / "1ake.pdb")
    assert r["atoms (model 1)"] == "1661" and r["chains"].startswith("1:")


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    p = write_mrc(tmp_path / "m.mrc", np.ones((4, 4, 4), np.float32), 1.0)
    with mrcfile.open(p, "r+", permissive=True) as m:
        m.header.mode = 1
    with pytest.raises(InputError):
        describe_file(p)
    assert main(["info", str(p)]) == 2
    (tmp_path / "x.xyz").write_text("1 2 3\n")
    assert main(["info", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err
    assert "mode" in err and "suffix" in err


def test_info_without_file_keeps_versions(capsys):
    assert main(["info"]) == 0
    assert "torch" in capsys.readouterr().out
