"""The three sub5 suites end to end in their quick form (slow: a few minutes of CPU).

They share one quick SUB5 store; the checks are on what the same-run references must reach on
easy data, so a broken simulator, aligner or split shows up as a number, not a crash.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sub5")


def test_sub5_classify_quick(bench_root):
    from cryoframe.bench import load_suite

    res = load_suite("sub5-classify").run(quick=True, out_dir=bench_root / "classify", seed=0)
    m = res.metrics
    # Clean templates against SNR-0.1 subtomograms of five very different complexes.
    assert m["acc_template_snr0.1"] >= 60.0
    assert all(v is None or 0.0 <= v <= 100.0 for v in m.values())
    assert (bench_root / "classify" / "sub5_classify.png").stat().st_size > 1000


def test_sub5_align_quick(bench_root):
    from cryoframe.bench import load_suite

    res = load_suite("sub5-align").run(quick=True, out_dir=bench_root / "align", seed=0)
    m = res.metrics
    # The FFT reference on the local range (<= 15 deg) at SNR 0.1 must beat doing nothing
    # (the mean true rotation of the local range is ~10 deg).
    assert m["ref_rot_deg_local_snr0.1"] < 8.0
    assert m["ref_pairs_per_s"] > 0
    for k, v in m.items():
        if v is not None and "frob" in k:
            assert 0.0 <= v <= 2 * math.sqrt(2) + 1e-6  # ||R - R'||_F <= 2 sqrt(2)


def test_sub5_average_quick(bench_root):
    from cryoframe.bench import load_suite

    res = load_suite("sub5-average").run(quick=True, out_dir=bench_root / "average", seed=0)
    m = res.metrics
    for pre in ("", "ref_"):
        # Resolutions are physical: never finer than Nyquist (2 nm at 10 A/voxel).
        assert m[f"{pre}res_halfmap_nm_snr0.1"] >= 2.0 - 1e-6
    assert m["ref_res_halfmap_nm_snr0.1"] < m["ref_res_halfmap_nm_snr0.03"] + 1.0
