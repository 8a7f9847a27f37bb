"""Store: resumable, shardable zarr + Parquet; RELION export round trip; Dask execution."""

import numpy as np
import pandas as pd
import pytest
import torch

from cryoframe import InputError
from cryoframe.io.store import SubtomoStore, parse_shard
from cryoframe.simulate.config import FastPathConfig, SubtomogramDatasetConfig
from cryoframe.simulate.engine import noisy_batches, simulate_unit
from cryoframe.simulate.noise import measured_snr

CFG = SubtomogramDatasetConfig(structures=["A", "B"], n_per_class=20, path="fast", unit_size=8,
                               fast=FastPathConfig(tilt_min_deg=-60, tilt_max_deg=60))


def _fill(path, densities, shard=(0, 1), fail_unit=None):
    store = SubtomoStore.create(path, 40, 32, unit_size=8,
                                attrs={"config": {"seed": CFG.seed}, "class_names": ["A", "B"]})
    for u in store.pending_units(shard):
        if u == fail_unit:
            import cryoframe.io.store as st

            orig = st.atomic_write_text

            def killed(*a, **k):  # the process dies after data + metadata, before the marker
                raise KeyboardInterrupt

            st.atomic_write_text = killed
            try:
                simulate_unit(store, u, densities, CFG, ["A", "B"])
            finally:
                st.atomic_write_text = orig
        simulate_unit(store, u, densities, CFG, ["A", "B"])
    return store


@pytest.fixture(scope="module")
def dens(proteasome, rubisco):
    return [proteasome, rubisco]


def test_resume_after_kill_has_no_duplicates(tmp_path, dens):
    ref = _fill(tmp_path / "ref.zarr", dens)
    with pytest.raises(KeyboardInterrupt):
        _fill(tmp_path / "run.zarr", dens, fail_unit=2)
    partial = SubtomoStore(tmp_path / "run.zarr")
    assert partial.done_units() == [0, 1]
    assert len(partial.read_table()) == 16  # the killed unit is invisible to readers
    resumed = _fill(tmp_path / "run.zarr", dens)
    t = resumed.read_table()
    assert t["index"].tolist() == list(range(40))
    assert resumed.done_units() == list(range(5))
    np.testing.assert_array_equal(resumed.group["volumes"][:], ref.group["volumes"][:])
    pd.testing.assert_frame_equal(t, ref.read_table())
    assert t["class_id"].tolist() == [0] * 20 + [1] * 20
    assert resumed.group["masks"][:].mean() > 0.02


def test_shards_partition_the_work(tmp_path, dens):
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(InputError):
        parse_shard("3/3")
    for k in range(3):
        s = _fill(tmp_path / "sh.zarr", dens, shard=(k, 3))
        assert s.done_units() == [u for u in range(5) if u % 3 <= k]
    assert SubtomoStore(tmp_path / "sh.zarr").pending_units() == []
    with pytest.raises(InputError):
        SubtomoStore.create(tmp_path / "sh.zarr", 41, 32, unit_size=8)


def test_streaming_noise_on_the_fly(tmp_path, dens):
    store = _fill(tmp_path / "n.zarr", dens)
    seen = []
    for b in noisy_batches(store, 0.05, batch_size=5):
        assert b["volumes"].shape == (5, 32, 32, 32)
        snr = measured_snr(b["clean"], b["volumes"])
        assert torch.allclose(snr, torch.full_like(snr, 0.05), rtol=0.01)
        seen += b["index"].tolist()
    assert seen == list(range(40))
    a = next(iter(noisy_batches(store, 0.05, batch_size=5)))["volumes"]
    b = next(iter(noisy_batches(store, 0.05, batch_size=5)))["volumes"]
    assert torch.equal(a, b)  # regenerated identically


def test_relion_export_round_trip(tmp_path, dens):
    from cryoframe.io.mrc import read_mrc
    from cryoframe.io.star import read_particles
    from cryoframe.io.subtomo_table import subtomo_from_relion, subtomo_rotations

    store = _fill(tmp_path / "e.zarr", dens)
    star = store.export_relion(tmp_path / "export", voxel_size_angstrom=10.0)
    table = read_particles(star)
    back = subtomo_from_relion(table)
    orig = store.read_table()
    R0 = torch.tensor(orig[[f"rot_{i}{j}" for i in range(3) for j in range(3)]].to_numpy()
                         .reshape(-1, 3, 3))
    assert torch.allclose(subtomo_rotations(back).double(), R0.double(), atol=1e-6)
    # origins: particle centre = box centre + shift, RELION origin = −shift
    shifts = orig[["shift_z_angstrom", "shift_y_angstrom", "shift_x_angstrom"]].to_numpy()
    np.testing.assert_allclose(back[["shift_z_angstrom", "shift_y_angstrom",
                                     "shift_x_angstrom"]].to_numpy(), shifts, atol=1e-6)
    p = table.particles
    np.testing.assert_allclose(p["rlnOriginXAngst"], -orig["shift_x_angstrom"], atol=1e-6)
    assert p["rlnClassNumber"].tolist() == (orig["class_id"] + 1).tolist()
    m = read_mrc(star.parent / p["rlnImageName"].iloc[3])
    np.testing.assert_allclose(m.data, store.group["volumes"][3], atol=1e-6)
    assert m.voxel_size_angstrom == pytest.approx(10.0)


def test_dask_local_cluster(tmp_path, dens):
    distributed = pytest.importorskip("distributed")
    from cryoframe.simulate.engine import run_units_dask

    store = SubtomoStore.create(tmp_path / "d.zarr", 40, 32, unit_size=8)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        done = run_units_dask(client, store.path, store.pending_units(), dens, CFG, ["A", "B"])
    assert sorted(done) == list(range(5))
    ref = _fill(tmp_path / "r.zarr", dens)
    np.testing.assert_array_equal(SubtomoStore(store.path).group["volumes"][:],
                                  ref.group["volumes"][:])
