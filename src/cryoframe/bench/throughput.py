"""``throughput`` suite: simulation speed next to the FFT rate measured in the same run.

Each metric is one small function ``_m_<name>(ctx) -> float | None`` that stores its own
details in ``ctx["details"][<name>]``; :data:`METRICS` lists them in order: simulation
(fast path, full tilt-series path, WBP), NRCL pretraining (end to end next to the network-only
rate), embedding with the shipped APT-ViT, pair alignment (learned + refinement vs the exhaustive
FFT reference) and particle ranking (``cryoframe rank`` end to end).

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

from cryoframe.baselines.fft_align import wedge_mask
from cryoframe.bench.results import SuiteResult
from cryoframe.geometry.rotations import random_rotations
from cryoframe.models import create_model
from cryoframe.models.pretrained import load_pair_encoder, shipped_weights_path
from cryoframe.particles.rank import rank_star
from cryoframe.simulate.config import TomogramConfig
from cryoframe.simulate.engine import build_densities, simulate_tomogram
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import add_noise
from cryoframe.simulate.particles2d import ParticleSimConfig, simulate_particle_stack
from cryoframe.simulate.reconstruct import weighted_backprojection
from cryoframe.tasks.align import LearnedAligner, standardize
from cryoframe.train.loop import pretrain_throughput

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

        ctx["densities"] = build_densities(["3J9I", "4V4R_30S"])
    return ctx["densities"]


def _m_sim_fast_subtomos_per_s(ctx: dict) -> float:

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

    shape = (100, 250, 250) if ctx["quick"] else (200, 500, 500)
    cfg = TomogramConfig(shape_zyx_px=shape, occupancy=0.1)
    dens = _densities(ctx)
    t0 = time.perf_counter()
    res = simulate_tomogram(dens, cfg, seed=ctx["seed"])
    total = time.perf_counter() - t0
    ctx["full"] = {"result": res, "total_s": total, "shape": shape}
    return ctx["full"]


def _m_tomogram_recon_s(ctx: dict) -> float:

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


def _m_pretrain_samples_per_s(ctx: dict) -> float:

    tp = pretrain_throughput(batch_size=16 if ctx["quick"] else 32,
                             steps=2 if ctx["quick"] else 4, seed=ctx["seed"])
    ctx["details"]["pretrain_samples_per_s"] = {
        k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in tp.items()}
    ctx["details"]["pretrain_samples_per_s"]["note"] = (
        "end to end (fast-path data + NRCL views + step) next to the network-only rate of the "
        "same model in the same run")
    return float(tp["pretrain_samples_per_s"])


def _pair_encoder(ctx: dict):
    if "encoder" not in ctx:

        if shipped_weights_path().exists():
            ctx["encoder"] = load_pair_encoder()
            ctx["encoder_source"] = shipped_weights_path().name
        else:  # a source checkout without weights: same architecture, random init

            torch.manual_seed(ctx["seed"])
            ctx["encoder"] = create_model("apt_pair_cpu").eval()
            ctx["encoder_source"] = "apt_pair_cpu (random init; no shipped weights)"
    return ctx["encoder"]


def _subtomo_batch(ctx: dict, n: int) -> torch.Tensor:
    from cryoframe.geometry.rotations import random_rotations
    from cryoframe.simulate.fastpath import FastSubtomogramSimulator

    gen = torch.Generator().manual_seed(ctx["seed"] + 7)
    sim = FastSubtomogramSimulator(_densities(ctx), box_size_px=32)
    cls = torch.arange(n) % len(_densities(ctx))
    clean = sim.simulate(cls, random_rotations(n, generator=gen))
    return add_noise(clean, 0.1, ctx["seed"], np.arange(n))


def _m_embed_per_s(ctx: dict) -> float:

    enc = _pair_encoder(ctx)
    n = 64 if ctx["quick"] else 256
    vols = standardize(_subtomo_batch(ctx, n))[:, None]

    @torch.no_grad()
    def go():
        for s0 in range(0, n, 64):
            enc.embed_single(vols[s0:s0 + 64])

    rate, times = _best_rate(go, n, 2)
    ctx["details"]["embed_per_s"] = {"n": n, "batch": 64, "times_s": times,
                                     "encoder": ctx["encoder_source"],
                                     "input": "32³ fast-path subtomograms at SNR 0.1"}
    return rate


def _align_pairs(ctx: dict) -> tuple[torch.Tensor, torch.Tensor]:
    if "pairs" not in ctx:
        n = 8 if ctx["quick"] else 32
        v = _subtomo_batch(ctx, 2 * n)
        ctx["pairs"] = (v[:n], v[n:])
    return ctx["pairs"]


def _m_align_pairs_per_s(ctx: dict) -> float:

    parts, refs = _align_pairs(ctx)
    m = wedge_mask((32, 32, 32))
    aligner = LearnedAligner(_pair_encoder(ctx), refine=True)
    t0 = time.perf_counter()
    aligner.align_to_reference(parts, refs, particle_mask=m, reference_mask=m)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    LearnedAligner(_pair_encoder(ctx), refine=False).predict(parts, refs)
    dt_pred = time.perf_counter() - t1
    ctx["details"]["align_pairs_per_s"] = {
        "n_pairs": len(parts), "seconds": dt, "encoder": ctx["encoder_source"],
        "prediction_only_pairs_per_s": len(parts) / dt_pred,
        "note": "learned prediction + local FFT refinement (the configuration the sub5-align "
                "suite scores); prediction alone in prediction_only_pairs_per_s"}
    return len(parts) / dt


def _m_align_ref_pairs_per_s(ctx: dict) -> float:
    from cryoframe.baselines.fft_align import FFTAligner, wedge_mask

    parts, refs = _align_pairs(ctx)
    m = wedge_mask((32, 32, 32))
    aligner = FFTAligner(step_deg=30.0)
    t0 = time.perf_counter()
    aligner.align_to_reference(parts, refs, particle_mask=m, reference_mask=m)
    dt = time.perf_counter() - t0
    ctx["details"]["align_ref_pairs_per_s"] = {
        "n_pairs": len(parts), "seconds": dt,
        "aligner": "exhaustive FFT, 30° SO(3) grid (552 rotations) + 4 refinement steps, "
                   "wedge-constrained, one reference per particle"}
    return len(parts) / dt


def _m_rank_particles_per_s(ctx: dict) -> float:
    import tempfile


    n = 512 if ctx["quick"] else 4096
    with tempfile.TemporaryDirectory() as tmp:
        star = Path(tmp) / "stack.star"
        simulate_particle_stack("1BXN", n, star, ParticleSimConfig(box_size_px=128, snr=0.05),
                                seed=ctx["seed"])
        t0 = time.perf_counter()  # cold: includes loading the shipped ranker
        rank_star(star, Path(tmp) / "ranked.star", None, progress=False, plot=False)
        wall = time.perf_counter() - t0
    ctx["details"]["rank_particles_per_s"] = {
        "n": n, "box_px": 128, "seconds": wall,
        "note": "cryoframe rank end to end: read MRCS + STAR, Fourier-crop to 64², normalise, "
                "score with the shipped CryoRanker, write the sorted STAR"}
    return n / wall


METRICS = [
    ("fft_vol_per_s", _m_fft_vol_per_s),
    ("sim_fast_subtomos_per_s", _m_sim_fast_subtomos_per_s),
    ("tomogram_recon_s", _m_tomogram_recon_s),
    ("sim_full_subtomos_per_s", _m_sim_full_subtomos_per_s),
    ("pretrain_samples_per_s", _m_pretrain_samples_per_s),
    ("embed_per_s", _m_embed_per_s),
    ("align_pairs_per_s", _m_align_pairs_per_s),
    ("align_ref_pairs_per_s", _m_align_ref_pairs_per_s),
    ("rank_particles_per_s", _m_rank_particles_per_s),
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
    if metrics["align_pairs_per_s"] and metrics["align_ref_pairs_per_s"]:
        details["align_speedup_learned_vs_fft"] = (metrics["align_pairs_per_s"]
                                                   / metrics["align_ref_pairs_per_s"])
    details["targets"] = {"sim_fast_subtomos_per_s": ">= 500 (issue 3)",
                          "rank_particles_per_s": ">= 476 (issue 7; paper: 4 V100 GPUs)",
                          "align_speedup_learned_vs_fft": ">= 10 (issue 5)",
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
