"""``throughput`` suite: simulation speed next to the FFT rate measured in the same run.

Each metric is one small function ``_m_<name>(ctx) -> float | None`` that stores its own
details in ``ctx["details"][<name>]``; :data:`METRICS` lists them in order. Metrics owned by
other parts of the project (pretraining, embedding, alignment, ranking) are reported as
missing (``null``) until their functions are added here.

* ``fft_vol_per_s`` — batched ``torch.fft.rfftn`` of 32³ float32 volumes (the physical bound of
  every Fourier-space step below).

The two per-volume rates are measured with torch's default thread count and with one thread;
the better one is the metric and both are in ``details`` (same rule for both, same run).
* ``sim_fast_subtomos_per_s`` — clean 32³ subtomograms per second of the fast path
  (:mod:`cryoframe.simulate.fastpath`), two classes (3J9I, 4V4R_30S), ±60° wedge.
* ``tomogram_recon_s`` — WBP of one 500×500×200 tomogram from 61 tilts (−60…60°, 2°) of a
  simulated virtual sample; ``--quick`` uses 250×250×100 and says so in ``details``.
* ``sim_full_subtomos_per_s`` — the whole tilt-series path on that tomogram (scene, projection,
  alignment, WBP, extraction with masks) divided into the number of extracted subtomograms.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from cryoframe.bench.results import SuiteResult

UNITS = {
    "sim_full_subtomos_per_s": "subtomograms/s",
    "tomogram_recon_s": "s",
    "sim_fast_subtomos_per_s": "subtomograms/s",
    "fft_vol_per_s": "volumes/s",
    "pretrain_samples_per_s": "samples/s",
    "embed_per_s": "subtomograms/s",
    "align_pairs_per_s": "pairs/s",
    "align_ref_pairs_per_s": "pairs/s",
    "rank_particles_per_s": "particles/s",
}


def _best_rate(fn, n_items: int, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_items / min(times), times


def _m_fft_vol_per_s(ctx: dict) -> float:
    n = 256 if ctx["quick"] else 1024
    x = torch.randn(n, 32, 32, 32, generator=torch.Generator().manual_seed(ctx["seed"]))
    default_threads = torch.get_num_threads()
    per_threads = {}
    for nt in sorted({default_threads, 1}):
        torch.set_num_threads(nt)
        try:
            per_threads[nt] = _best_rate(lambda: torch.fft.rfftn(x, dim=(-3, -2, -1)), n, 5)
        finally:
            torch.set_num_threads(default_threads)
    best = max(per_threads, key=lambda k: per_threads[k][0])
    rate, times = per_threads[best]
    ctx["details"]["fft_vol_per_s"] = {
        "batch": n, "times_s": times, "statistic": "best of 5, best thread count",
        "rate_by_torch_threads": {str(k): v[0] for k, v in per_threads.items()},
        "torch_threads_used": best}
    return rate


def _densities(ctx: dict):
    if "densities" not in ctx:
        from cryoframe.simulate.engine import build_densities

        ctx["densities"] = build_densities(["3J9I", "4V4R_30S"])
    return ctx["densities"]


def _m_sim_fast_subtomos_per_s(ctx: dict) -> float:
    from cryoframe.geometry.rotations import random_rotations
    from cryoframe.simulate.fastpath import FastSubtomogramSimulator

    dens = _densities(ctx)
    sim = FastSubtomogramSimulator(dens, 32, -60.0, 60.0)
    n = 512 if ctx["quick"] else 2048
    gen = torch.Generator().manual_seed(ctx["seed"])
    R = random_rotations(n, generator=gen)
    cls = np.arange(n) % len(dens)
    shifts = torch.rand(n, 3, generator=gen) * 2 - 1
    sim.simulate(cls[:64], R[:64], shifts[:64])  # warm-up
    # torch's default thread count and one thread (the setting of a DataLoader worker; on a
    # shared, loaded machine waiting for a second thread can cost more than it gains)
    default_threads = torch.get_num_threads()
    per_threads = {}
    for nt in sorted({default_threads, 1}):
        torch.set_num_threads(nt)
        try:
            per_threads[nt] = _best_rate(lambda: sim.simulate(cls, R, shifts), n, 3)
        finally:
            torch.set_num_threads(default_threads)
    best = max(per_threads, key=lambda k: per_threads[k][0])
    rate, times = per_threads[best]
    ctx["details"]["sim_fast_subtomos_per_s"] = {
        "n": n, "times_s": times, "statistic": "best of 3, best thread count",
        "rate_by_torch_threads": {str(k): v[0] for k, v in per_threads.items()},
        "torch_threads_used": best, "classes": ["3J9I", "4V4R_30S"],
        "box_px": 32, "tilt_range_deg": [-60, 60],
        "density_boxes_px": [int(d.data.shape[0]) for d in dens]}
    return rate


def _full_path(ctx: dict) -> dict:
    if "full" in ctx:
        return ctx["full"]
    from cryoframe.simulate.config import TomogramConfig
    from cryoframe.simulate.engine import simulate_tomogram

    shape = (100, 250, 250) if ctx["quick"] else (200, 500, 500)
    cfg = TomogramConfig(shape_zyx_px=shape, occupancy=0.1)
    dens = _densities(ctx)
    t0 = time.perf_counter()
    res = simulate_tomogram(dens, cfg, seed=ctx["seed"])
    total = time.perf_counter() - t0
    ctx["full"] = {"result": res, "total_s": total, "shape": shape}
    return ctx["full"]


def _m_tomogram_recon_s(ctx: dict) -> float:
    from cryoframe.simulate.reconstruct import weighted_backprojection

    f = _full_path(ctx)
    res = f["result"]
    images, tilts = res.alignment.aligned, res.tilt_series.tilts_deg
    default_threads = torch.get_num_threads()
    by_threads = {}
    for nt in sorted({default_threads, 1}):
        torch.set_num_threads(nt)
        try:
            t0 = time.perf_counter()
            weighted_backprojection(images, tilts, f["shape"])
            by_threads[nt] = time.perf_counter() - t0
        finally:
            torch.set_num_threads(default_threads)
    t = min(by_threads.values())
    ctx["details"]["tomogram_recon_s"] = {
        "s_by_torch_threads": {str(k): v for k, v in by_threads.items()},
        "in_pipeline_s": float(res.timings_s["reconstruct"]),
        "statistic": "WBP re-run on the same aligned series at default and one torch thread; "
                     "the faster is the metric",
        "shape_zyx_px": list(f["shape"]), "n_tilts": int(len(tilts)),
        "quick_uses_smaller_tomogram": bool(ctx["quick"]),
        "note": "WBP (Hann ramp, 2x x-oversampled linear read-out, CSR back-projection) of "
                "the aligned simulated tilt series"}
    return t


def _m_sim_full_subtomos_per_s(ctx: dict) -> float:
    f = _full_path(ctx)
    res = f["result"]
    n = len(res.extraction.table)
    ctx["details"]["sim_full_subtomos_per_s"] = {
        "shape_zyx_px": list(f["shape"]), "n_particles_placed": len(res.scene),
        "n_extracted": n, "total_s": f["total_s"],
        "stage_s": {k: round(float(v), 3) for k, v in res.timings_s.items()}}
    return n / f["total_s"]


def _missing(name: str, owner: str):
    def fn(ctx: dict) -> None:
        ctx["details"][name] = {"missing": f"not measured by this suite yet ({owner})"}
        return None

    return fn


METRICS = [
    ("fft_vol_per_s", _m_fft_vol_per_s),
    ("sim_fast_subtomos_per_s", _m_sim_fast_subtomos_per_s),
    ("tomogram_recon_s", _m_tomogram_recon_s),
    ("sim_full_subtomos_per_s", _m_sim_full_subtomos_per_s),
    ("pretrain_samples_per_s", _missing("pretrain_samples_per_s", "pretraining")),
    ("embed_per_s", _missing("embed_per_s", "embedding")),
    ("align_pairs_per_s", _missing("align_pairs_per_s", "learned alignment")),
    ("align_ref_pairs_per_s", _missing("align_ref_pairs_per_s", "FFT reference alignment")),
    ("rank_particles_per_s", _missing("rank_particles_per_s", "particle ranking")),
]


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Measure every metric of :data:`METRICS` (see module docstring)."""
    ctx: dict = {"quick": quick, "seed": seed, "details": {}}
    metrics: dict[str, float | None] = {}
    for name, fn in METRICS:
        metrics[name] = fn(ctx)
    details = ctx["details"]
    details["torch_threads"] = torch.get_num_threads()
    details["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fft = metrics["fft_vol_per_s"]
    if fft and metrics["sim_fast_subtomos_per_s"]:
        details["fast_path_fraction_of_fft_rate"] = metrics["sim_fast_subtomos_per_s"] / fft
    details["targets"] = {"sim_fast_subtomos_per_s": ">= 500 (issue 3)",
                          "tomogram_recon_s": "<= 60 for 500x500x200 from 61 tilts (issue 3)"}
    _plot(metrics, Path(out_dir))
    return SuiteResult(metrics=metrics, units=dict(UNITS), references={}, details=details)


def _plot(metrics: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("fft_vol_per_s", "sim_fast_subtomos_per_s", "sim_full_subtomos_per_s")
             if metrics.get(k)]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.barh(names, [metrics[k] for k in names])
    ax.set_xscale("log")
    ax.set_xlabel("volumes / s (same run)")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "throughput.png", dpi=100)
    plt.close(fig)
