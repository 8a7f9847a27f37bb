"""MRC reading/writing: round trips, float16, mmap, gzip, bad input, atomic writes."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

import cryoframe.io.mrc as mrc_mod
from cryoframe import InputError
from cryoframe.data import map_path
from cryoframe.io.mrc import (
    MrcHeaderWarning,
    read_image_stack,
    read_mrc,
    read_mrc_header,
    read_volume,
    write_mrc,
)


@pytest.fixture
def vol() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(12, 10, 8)).astype(np.float32)


def test_roundtrip_volume_voxel_size_origin(tmp_path, vol):
    p = write_mrc(tmp_path / "v.mrc", vol, 2.5, origin_angstrom=(10.0, -4.0, 3.5))
    out = read_mrc(p)
    assert np.array_equal(out.data, vol)
    assert out.voxel_size_angstrom == pytest.approx(2.5)
    assert out.origin_angstrom == pytest.approx((10.0, -4.0, 3.5))
    assert not out.is_image_stack
    # the header agrees with what mrcfile itself reports (x/y/z records)
    with mrcfile.open(p) as m:
        assert float(m.header.origin.x) == pytest.approx(3.5)
        assert float(m.header.origin.z) == pytest.approx(10.0)
        assert m.data.shape == (12, 10, 8)


def test_stack_flag_and_read_image_stack(tmp_path, vol):
    p = write_mrc(tmp_path / "s.mrcs", vol, 1.3)
    hdr = read_mrc_header(p)
    assert hdr.is_image_stack and hdr.shape_zyx == (12, 10, 8)
    st = read_image_stack(p)
    assert st.data.shape == (12, 10, 8)
    with pytest.raises(InputError) as ei:
        read_volume(p)
    assert ei.value.field == "dimensions" and "3D volume" in ei.value.expected
    # a volume is not accepted as an image stack, a single image becomes a stack of one
    pv = write_mrc(tmp_path / "v.mrc", vol, 1.3)
    with pytest.raises(InputError, match="image stack"):
        read_image_stack(pv)
    pi = write_mrc(tmp_path / "i.mrc", vol[0], 1.3)
    assert read_image_stack(pi).data.shape == (1, 10, 8)
    with pytest.raises(InputError):
        read_volume(pi)


def test_float16_mode12_roundtrip(tmp_path, vol):
    p = write_mrc(tmp_path / "h.mrc", vol, 1.0, float16=True)
    assert read_mrc_header(p).mode == 12
    out = read_mrc(p)
    assert out.data.dtype == np.float16
    assert np.allclose(out.data.astype(np.float32), vol, rtol=1e-3, atol=1e-3)
    assert p.stat().st_size < 1024 + vol.nbytes * 0.6
    with pytest.raises(InputError, match="float16"):
        write_mrc(tmp_path / "o.mrc", np.full((2, 2, 2), 1e6, np.float32), 1.0, float16=True)


def test_mmap_read_matches_and_is_lazy(tmp_path, vol):
    p = write_mrc(tmp_path / "m.mrc", vol, 1.0)
    out = read_mrc(p, mmap=True)
    assert isinstance(out.data, np.memmap)
    assert np.array_equal(np.asarray(out.data), vol)
    assert not out.data.flags.writeable
    # a single image keeps the same shape whether memory-mapped or loaded
    pi = write_mrc(tmp_path / "i.mrc", vol[0], 1.0)
    assert read_mrc(pi, mmap=True).data.shape == read_mrc(pi).data.shape == (10, 8)


def test_gzip_read_bundled_map_and_written(tmp_path, vol):
    m = read_mrc(map_path("1BXN"))
    assert m.data.ndim == 3 and m.voxel_size_angstrom == pytest.approx(10.0)
    p = write_mrc(tmp_path / "g.mrc.gz", vol, 3.0)
    with open(p, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    out = read_mrc(p, mmap=True)  # mmap silently falls back for gzip
    assert np.array_equal(out.data, vol) and out.voxel_size_angstrom == pytest.approx(3.0)


def test_real_map_fixture(data_dir):
    m = read_volume(data_dir / "EMD-3197.map")
    assert m.data.shape == (20, 20, 20)
    assert m.voxel_size_angstrom == pytest.approx(11.4, abs=1e-3)


@pytest.mark.parametrize("mmap", [False, True])
def test_truncated_file(tmp_path, vol, mmap):
    p = write_mrc(tmp_path / "v.mrc", vol, 1.0)
    bad = tmp_path / "trunc.mrc"
    bad.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(InputError) as ei:
        read_mrc(bad, mmap=mmap)
    assert ei.value.field == "data" and str(bad) == ei.value.file
    assert str(1024 + vol.nbytes) in ei.value.expected


@pytest.mark.parametrize("mmap", [False, True])
def test_not_mrc(tmp_path, mmap):
    bad = tmp_path / "x.mrc"
    bad.write_bytes(b"this is not a map" * 200)
    with pytest.raises(InputError) as ei:
        read_mrc(bad, mmap=mmap)
    assert ei.value.field == "MAP" and "208" in ei.value.expected


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_mrc(tmp_path / "nope.mrc")


def test_nan_inf_rejected(tmp_path, vol):
    bad = vol.copy()
    bad[0, 0, 0] = np.nan
    bad[1, 1, 1] = np.inf
    with pytest.raises(InputError, match="2 NaN/inf") as ei:
        write_mrc(tmp_path / "n.mrc", bad, 1.0)
    assert ei.value.field == "data" and not (tmp_path / "n.mrc").exists()
    with pytest.warns(RuntimeWarning), mrcfile.new(tmp_path / "n.mrc") as m:  # behind our back
        m.set_data(bad)
        m.voxel_size = 1.0
    with pytest.raises(InputError, match="NaN/inf"):
        read_mrc(tmp_path / "n.mrc")


def test_voxel_size_zero_warns_and_override(tmp_path, vol):
    p = tmp_path / "z.mrc"
    with mrcfile.new(p) as m:
        m.set_data(vol)
        m.voxel_size = 0.0
    with pytest.warns(MrcHeaderWarning, match="voxel size is 0"):
        assert read_mrc(p).voxel_size_angstrom == 1.0
    assert read_mrc(p, voxel_size_angstrom=4.2).voxel_size_angstrom == 4.2


def test_bad_write_args(tmp_path, vol):
    with pytest.raises(InputError, match="4D"):
        write_mrc(tmp_path / "a.mrc", vol[None], 1.0)
    with pytest.raises(InputError, match="voxel size"):
        write_mrc(tmp_path / "a.mrc", vol, 0.0)


def test_atomic_write_keeps_old_content_on_interrupt(tmp_path, vol, monkeypatch):
    p = write_mrc(tmp_path / "keep.mrc", vol, 1.0)
    before = p.read_bytes()

    class Boom(RuntimeError):
        pass

    real_new = mrc_mod.mrcfile.new

    def failing_new(*args, **kwargs):
        obj = real_new(*args, **kwargs)
        obj.set_data(np.zeros((2, 2, 2), np.float32))
        obj.close()
        raise Boom("interrupted mid-write")

    monkeypatch.setattr(mrc_mod.mrcfile, "new", failing_new)
    with pytest.raises(Boom):
        write_mrc(p, vol * 2, 1.0)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["keep.mrc"]  # no temporary left behind


def test_pre2014_file_without_map_stamp_is_read_with_warning(tmp_path, vol):
    p = write_mrc(tmp_path / "old.mrcs", vol, 1.3)
    raw = bytearray(p.read_bytes())
    raw[208:212] = b"\x00\x00\x00\x00"
    old = tmp_path / "old2.mrcs"
    old.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="MAP"):
        m = read_mrc(old)
    np.testing.assert_array_equal(m.data, vol)
    # the same file cut short is still an error naming the missing stamp
    cut = tmp_path / "cut.mrcs"
    cut.write_bytes(bytes(raw[:-100]))
    with pytest.raises(InputError) as ei:
        read_mrc(cut)
    assert ei.value.field == "MAP"


def test_bundled_map_with_ispg0_reads_as_volume():
    from cryoframe.data import map_path

    v = read_volume(map_path("1BXN"))
    assert v.data.shape == (52, 52, 52)
