"""Dynamo tables: named columns, byte-exact round trip, complex tokens, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryoframe import InputError
from cryoframe.io.dynamo import (
    DYNAMO_COLUMNS,
    DynamoTableWarning,
    read_tbl,
    read_tomogram_doc,
    write_tbl,
    write_tomogram_doc,
)


def test_read_named_columns(data_dir):
    df = read_tbl(data_dir / "dynamo/t_double.tbl")
    assert df.shape == (300, 35) and tuple(df.columns) == DYNAMO_COLUMNS
    first = df.iloc[0]
    assert first["tag"] == 1 and first["dx"] == pytest.approx(2.5178)
    assert first["tdrot"] == pytest.approx(175.66) and first["narot"] == pytest.approx(-129.51)
    assert (first["x"], first["y"], first["z"]) == pytest.approx((141.28, 114.71, 163.08))
    assert first["class"] == 9 and first["ymintilt"] == -60
    assert df["tag"].dtype == np.int64 and df["tdrot"].dtype == np.float64


def test_roundtrip_byte_identical(data_dir, tmp_path):
    src = data_dir / "dynamo/t_double.tbl"
    out = write_tbl(tmp_path / "o.tbl", read_tbl(src))
    assert out.read_text() == src.read_text()
    pd.testing.assert_frame_equal(read_tbl(out), read_tbl(src), check_exact=True)


def test_matlab_complex_tokens_read_as_real(tmp_path):
    row = ["1", "1", "0", "0+1.2e-06i", "1.5-2i", "0"] + ["0"] * 29
    p = tmp_path / "c.tbl"
    p.write_text(" ".join(row) + "\n" + " ".join(["2"] + ["3.25"] * 34) + "\n")
    with pytest.warns(DynamoTableWarning, match="2 complex value"):
        df = read_tbl(p)
    assert df.loc[0, "dx"] == 0.0 and df.loc[0, "dy"] == 1.5 and df.loc[1, "dy"] == 3.25


def test_extra_columns_named_and_kept(tmp_path):
    p = tmp_path / "e.tbl"
    p.write_text(" ".join(str(i) for i in range(1, 43)) + "\n")
    df = read_tbl(p)
    assert df.loc[0, "apix"] == 36 and df.loc[0, "eig2"] == 42 and df.loc[0, "col38"] == 38
    assert read_tbl(write_tbl(tmp_path / "o.tbl", df)).equals(df)


def test_defaults_for_missing_columns(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "z": [5.0, 6.0], "tdrot": [10.0, 20.0]})
    back = read_tbl(write_tbl(tmp_path / "m.tbl", df))
    assert back.shape == (2, 35)
    assert back["tag"].tolist() == [1, 2] and back["aligned"].tolist() == [1, 1]
    assert back["tdrot"].tolist() == [10.0, 20.0] and back["cc"].tolist() == [0.0, 0.0]


def test_bad_input(tmp_path):
    p = tmp_path / "bad.tbl"
    p.write_text("1 2 3\n1 2\n")
    with pytest.raises(InputError) as ei:
        read_tbl(p)
    assert ei.value.field == "line 2" and ei.value.expected == "3 columns"
    p.write_text("1 2 abc\n")
    with pytest.raises(InputError) as ei:
        read_tbl(p)
    assert ei.value.field == "averaged"
    with pytest.raises(InputError, match="unknown Dynamo column"):
        write_tbl(tmp_path / "o.tbl", pd.DataFrame({"rlnAngleRot": [1.0]}))
    with pytest.raises(InputError) as ei:
        write_tbl(tmp_path / "o.tbl", pd.DataFrame({"x": [np.nan]}))
    assert ei.value.field == "x" and not (tmp_path / "o.tbl").exists()


def test_tomogram_doc_roundtrip(tmp_path):
    names = {1: "tomos/a b.mrc", 7: "t7.mrc"}
    assert read_tomogram_doc(write_tomogram_doc(tmp_path / "v.doc", names)) == names
    (tmp_path / "bad.doc").write_text("x tomo.mrc\n")
    with pytest.raises(InputError, match="line 1"):
        read_tomogram_doc(tmp_path / "bad.doc")
