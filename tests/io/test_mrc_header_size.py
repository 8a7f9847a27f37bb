"""A header whose mode or dimensions do not describe the data block is refused (issue 15)."""

from __future__ import annotations

import os
import stat

import mrcfile
import numpy as np
import pytest

from cryoframe._errors import InputError
from cryoframe.io.mrc import read_mrc, write_mrc


def _float_file_with_mode(path, mode: int):
    data = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    write_mrc(path, data, 5.0)
    with mrcfile.open(path, "r+", permissive=True) as m:
        m.header.mode = mode  # the header now claims int16 over float32 bytes
    return data


@pytest.mark.parametrize("mmap", [False, True])
def test_mode_int16_over_float32_data_is_refused(tmp_path, mmap):
    p = tmp_path / "mode1.mrc"
    _float_file_with_mode(p, 1)
    with pytest.raises(InputError) as ei:
        read_mrc(p, mmap=mmap)
    assert ei.value.file == str(p) and ei.value.field == "mode"
    assert "fits mode 2" in str(ei.value)


def test_extra_bytes_after_data_are_refused(tmp_path):
    p = tmp_path / "long.mrc"
    write_mrc(p, np.ones((4, 4, 4), np.float32), 1.0)
    with open(p, "ab") as fh:
        fh.write(b"\0" * 12)
    with pytest.raises(InputError) as ei:
        read_mrc(p)
    assert ei.value.field == "nx/ny/nz"


def test_consistent_file_still_reads(tmp_path):
    p = tmp_path / "ok.mrc"
    data = _float_file_with_mode(p, 2)
    np.testing.assert_array_equal(read_mrc(p).data, data)


def test_outputs_are_group_readable(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_mrc(tmp_path / "m.mrc", np.ones((4, 4, 4), np.float32), 1.0)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(p.stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH, oct(mode)
