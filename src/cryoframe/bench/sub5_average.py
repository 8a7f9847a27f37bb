"""sub5-average: reference-free averaging driven by the learned vs the FFT aligner (BENCHMARKS.md).

Data: the 7P6Z (70S ribosome) subtomograms of SUB5 (both pools; nothing is trained here) at each
SNR, poses unknown to the methods. Both runs use
:func:`cryoframe.tasks.average.average_subtomograms` with the same half split, initial references (plain average of each half), wedge-aware Fourier averaging,
FSC-weighted references and stopping rule; only the aligner differs:

* learned — the posterior aligner (:class:`cryoframe.tasks.posterior_align.PosteriorAligner`,
  global range, shipped correlation head trained on the 134 training classes, never on SUB5),
  then a local Fourier refinement from its pose (FFT aligner's full-band pattern search, first
  step ``AVERAGING_REFINE_START_DEG``): the coarse-to-fine of 000 §3.3, learned global,
  classical local;
* reference (``ref_``) — :class:`FFTAligner`, 30° SO(3) grid + 4 refinement steps.

Reported: FSC-0.143 resolution between the (rigidly registered) half maps inside a soft
spherical mask, FSC-0.5 resolution of the full map against the clean 7P6Z density (registered),
both in nm (Nyquist 2.0 nm), iterations and wall time. The half-map FSC only measures
consistency: averaged at random poses, both halves still share the rotational average, so
``details`` also holds that random-pose control; the FSC against the ground truth measures
correctness. ``details`` also holds the true-pose control: the same halves averaged at their true
poses, what better poses can give on these particles.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.baselines.fft_align import FFTAligner, wedge_mask
from cryoframe.bench.results import SuiteResult, progress
from cryoframe.bench.sub5_data import (
    PAPER_NOTE,
    VOXEL_ANGSTROM,
    build_sub5,
    class_maps,
    load_sub5,
    snr_key,
)
from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.io.mrc import write_mrc
from cryoframe.models.pretrained import SHIPPED_CORRELATION_HEAD, load_correlation_head
from cryoframe.tasks.average import (
    average_subtomograms,
    half_sets,
    soft_sphere_mask,
    weighted_average,
)
from cryoframe.tasks.posterior_align import AVERAGING_REFINE_START_DEG, PosteriorAligner

PAPER = {"paper_res_nm_snr0.1": 2.56, "paper_res_nm_snr0.05": 2.40, "paper_res_nm_snr0.03": 2.95,
         "paper_res_nm_snr0.01": 3.20, "label": "paper, on its own data (Table 3, ours; its "
         "voxel size is not stated)"}
CLASS_INDEX = 0  # 7P6Z


def _plot(curves: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for i, (label, (freq, curve)) in enumerate(curves.items()):
        ax.plot(np.asarray(freq) / (VOXEL_ANGSTROM / 10.0), np.asarray(curve),
                color=f"C{i // 2}", ls="-" if "learned" in label else "--", label=label)
    ax.axhline(0.143, color="k", lw=0.7, ls=":")
    ax.set_xlabel("spatial frequency (1/nm)")
    ax.set_ylabel("half-map FSC")
    ax.set_ylim(-0.1, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("sub5-average: half-map FSC (7P6Z)")
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "sub5_average_fsc.png", format="png")
    plt.close(fig)


def true_pose_resolution_angstrom(x, rotations, offsets_px, wedge, seed: int,
                                  mask_radius_fraction: float = 0.4,
                                  regularisation: float = 0.1) -> float:
    """Half-map FSC-0.143 resolution (Å) of the particles averaged at their true poses, with
    the half split, mask and Wiener constant of :func:`average_subtomograms`: what better poses
    can give on these particles (an aligner can read higher only by fitting noise).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    n_part, n = x.shape[0], x.shape[-1]
    _, halves = half_sets(n_part, torch.Generator().manual_seed(seed))
    maps = [weighted_average(x[h], rotations[h].float(), offsets_px[h].float(), wedge,
                             regularisation=regularisation)[0] for h in halves]
    freq, curve = fsc(maps[0], maps[1], mask=soft_sphere_mask(n, mask_radius_fraction * n))
    return float(resolution_at(freq, curve, 0.143, VOXEL_ANGSTROM))


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Run the suite; quick: 2 SNRs, ≤ 24 particles, ≤ 3 iterations; full: 4 SNRs, 1,000
    particles, ≤ 5 iterations (3 at least) per method. ``CRYOFRAME_SUB5_AVERAGE_SNRS`` (e.g.
    ``0.1,0.05``) runs only those SNRs, so a full run can be split over processes and merged.
    """
    out_dir = Path(out_dir)
    # Full: the four SNRs of the paper's Table 3 (SNR 0.005 is left out of averaging to keep
    # the ten 1,000-particle runs within about two CPU hours).
    snrs = (0.1, 0.03) if quick else (0.1, 0.05, 0.03, 0.01)
    part = os.environ.get("CRYOFRAME_SUB5_AVERAGE_SNRS")
    if part:  # one part of a run split over processes (benchmarks/tools/merge_results.py)
        snrs = tuple(float(v) for v in part.split(","))
    n_max = 24 if quick else 1000
    store = build_sub5(out_dir.parent / "_sub5_cache", 20 if quick else 2000, seed, quick)
    data = load_sub5(store)
    idx = np.flatnonzero(data.labels == CLASS_INDEX)[:n_max]  # both pools: no training here
    gt = class_maps()[CLASS_INDEX]
    wedge = wedge_mask((32, 32, 32))
    aligners = {"ref_": FFTAligner(step_deg=30.0, refine_steps=4, max_shift_px=4.0),
                "": PosteriorAligner(load_correlation_head(), range_deg=180.0, max_shift_px=4.0,
                                     refine_start_deg=AVERAGING_REFINE_START_DEG)}
    enc_note = (f"posterior aligner, shipped correlation head ({SHIPPED_CORRELATION_HEAD}), then "
                f"local Fourier refinement from {AVERAGING_REFINE_START_DEG:g} degrees")
    iters = 3 if quick else 5
    metrics: dict[str, float | None] = {}
    details: dict = {"snrs_in_this_process": list(snrs), "aligner": enc_note, "note": PAPER_NOTE, "n_particles": int(len(idx)),
                     "class": "7P6Z", "history": {}}
    curves = {}
    for snr in snrs:
        key = snr_key(snr)
        x = data.at_snr(snr, idx)
        details[f"res_halfmap_true_pose_control_nm_{key}"] = true_pose_resolution_angstrom(
            x, data.rotations[idx], data.offsets_px[idx], wedge, seed) / 10.0
        for pre in ("", "ref_"):
            res = average_subtomograms(x, aligners[pre], particle_mask=wedge,
                                       pixel_size_angstrom=VOXEL_ANGSTROM, ground_truth=gt,
                                       max_iterations=iters, min_iterations=min(3, iters),
                                       seed=seed, progress=lambda e, s=snr, p=pre: progress(
                                           f"sub5-average SNR {s:g} {'FFT' if p else 'learned'}"
                                           f" iteration {e['iteration']}: half-map "
                                           f"{e['res_halfmap_angstrom']:.1f} Å, "
                                           f"{e['seconds']:.0f} s"))
            metrics[f"{pre}res_halfmap_nm_{key}"] = res.resolution_halfmap_angstrom / 10.0
            metrics[f"{pre}res_vs_gt_nm_{key}"] = res.resolution_vs_gt_angstrom / 10.0
            metrics[f"{pre}wall_s_{key}"] = res.wall_s
            details["history"][f"{pre or 'learned_'}{key}"] = res.history
            details[f"{pre}iterations_{key}"] = len(res.history)
            details[f"{pre}res_halfmap_random_pose_control_nm_{key}"] = (
                res.resolution_random_pose_angstrom / 10.0)
            label = f"{'FFT' if pre else 'learned'} SNR {snr:g}"
            curves[label] = (res.fsc_freq.tolist(), res.fsc_half.tolist())
            if pre == "ref_" and snr == snrs[0]:

                write_mrc(out_dir / f"sub5_average_fft_{key}.mrc", res.map.numpy(),
                          VOXEL_ANGSTROM)
    _plot(curves, out_dir)
    units = {k: ("nm" if "_nm_" in k else "s") for k in metrics}
    return SuiteResult(metrics=metrics, units=units, references=PAPER, details=details)


