"""sub5-align: learned pair alignment vs exhaustive FFT alignment on SUB5 (BENCHMARKS.md).

Pairs: a target-pool subtomogram ``X`` (signal ``S`` + its own reconstructed noise) and
``X_1 = W·T(S) + α N_j``: the same particle's signal moved by a known rigid transform ``T``
(cubic B-spline rotation about the box centre, then a Fourier shift), re-filtered by the
microscope-frame wedge ``W`` (±60° about y, so both members miss the same Fourier region), plus
the reconstructed noise box of another particle ``j``, calibrated to the same SNR. Ranges:
``local`` (angle ≤ 15° about a uniform axis, shift ≤ 6 voxels) and ``global`` (uniform SO(3),
shift ≤ 4 voxels). The target is ``T`` with ``X_1 ≈ shift(rotate(X, R), t)``.

Methods (same pairs): the learned posterior aligner
(:class:`cryoframe.tasks.posterior_align.PosteriorAligner` with the shipped correlation head,
trained on the 134 training classes' full-path store, never on SUB5: coarse grid on
Fourier-cropped volumes, two fine grids, posterior-mean rotation and translation; local range
within 15°, global all of SO(3)); the reference is :class:`FFTAligner` (local: 5° grid inside
15° + 3 refinement steps; global: 30° grid + 4 refinement steps). Errors: geodesic angle
(degrees), ‖R − R̂‖_F (random guessing ≈ 2.4), translation (voxels); mean ± std. Rates from
wall time including every refinement: ``pairs_per_s`` / ``ref_pairs_per_s`` over the local
range, ``pairs_per_s_global`` / ``ref_pairs_per_s_global`` over the global range. The APT-ViT
pair encoder's transformation head (the paper's) was measured on the same pairs in the run of
commit 6072541 (``git show 6072541:benchmarks/results/sub5-align.json``): its raw prediction
stayed near "no rotation" and it is no longer run here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.baselines.fft_align import FFTAligner
from cryoframe.bench.results import SuiteResult, progress
from cryoframe.bench.sub5_data import PAPER_NOTE, build_sub5, load_sub5, snr_key
from cryoframe.geometry.rotations import frobenius_distance, geodesic_distance_deg
from cryoframe.models.pretrained import SHIPPED_CORRELATION_HEAD, load_correlation_head
from cryoframe.tasks.posterior_align import PosteriorAligner
from cryoframe.train.align_pairs import make_wedge_pairs

RANGES = {"local": (15.0, 6.0), "global": (180.0, 4.0)}
PAPER = {"paper_rot_frob_all_snr": "0.25 ± 0.08 (Table 2, ours)",
         "paper_trans_vox_all_snr": "2.0 ± 0.8 (Table 2, ours)",
         "paper_boe_vit": "0.33 rotation / 2.5 voxels",
         "label": "paper, on its own data"}


def make_pairs(data, index: np.ndarray, snr: float, max_rot_deg: float, max_shift_px: float,
               gen: torch.Generator):
    """Pairs ``(X, X_1)`` and their transform (module docstring); rows ``index`` of ``data``."""
    return make_wedge_pairs(data.signal, data.noise, index, snr, max_rot_deg, max_shift_px, gen)


def _errors(res, rot, sh) -> dict:

    deg = geodesic_distance_deg(res.rotations.double(), rot.double()).numpy()
    frob = frobenius_distance(res.rotations.double(), rot.double()).numpy()
    tr = (res.shifts_zyx_px - sh).norm(dim=1).numpy()
    return {"deg": deg, "frob": frob, "trans": tr}


def _plot(metrics: dict, snrs, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    for ax, (what, unit) in zip(axes, [("rot_deg", "rotation error (°)"),
                                       ("trans_vox", "translation error (voxels)")]):
        for rng, ls in (("local", "-"), ("global", "--")):
            for pre, c, lab in (("", "C0", "learned"), ("ref_", "C3", "FFT")):
                ys = [metrics.get(f"{pre}{what}_{rng}_{snr_key(s)}") for s in snrs]
                ax.plot(range(len(snrs)), [np.nan if y is None else y for y in ys], ls,
                        color=c, marker="o", label=f"{lab} {rng}")
        ax.set_xticks(range(len(snrs)), [f"{s:g}" for s in snrs])
        ax.set_xlabel("SNR")
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)
    fig.suptitle("sub5-align (same pairs)")
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "sub5_align.png", format="png")
    plt.close(fig)


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Run the suite; quick: 2 SNRs, 10 pairs per SNR and range, 2 fine-tuning epochs; full:
    5 SNRs, 100 pairs per SNR and range, 6 fine-tuning epochs on 400 volumes.
    """
    out_dir = Path(out_dir)
    n_pairs = 10 if quick else 100  # full: 1,000 pairs per method (CPU budget)
    snrs = (0.1, 0.01) if quick else (0.1, 0.05, 0.03, 0.01, 0.005)
    store = build_sub5(out_dir.parent / "_sub5_cache", 20 if quick else 2000, seed, quick)
    data = load_sub5(store)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    target = np.flatnonzero(data.pool == 1)
    head = load_correlation_head()
    details: dict = {"aligner": "posterior aligner, shipped correlation head "
                     f"({SHIPPED_CORRELATION_HEAD})", "note": PAPER_NOTE,
                     "n_pairs_per_snr": n_pairs, "std": {}, "ref_std": {}, "confidence": {},
                     "fft_local": "5° grid within 15° of identity, 3 refinement steps",
                     "fft_global": "30° so3_grid, 4 refinement steps"}
    learned = {"local": PosteriorAligner(head, range_deg=15.0, max_shift_px=8.0),
               "global": PosteriorAligner(head, range_deg=180.0, max_shift_px=6.0)}
    fft = {"local": FFTAligner(step_deg=5.0, local_range_deg=15.0, refine_steps=3,
                               refine_start_deg=1.7, max_shift_px=8.0),
           "global": FFTAligner(step_deg=30.0, refine_steps=4, max_shift_px=6.0)}
    metrics: dict[str, float | None] = {}
    seconds = {(r, m): 0.0 for r in RANGES for m in ("learned", "ref")}
    counts = {r: 0 for r in RANGES}
    for rname, (max_rot, max_sh) in RANGES.items():
        for snr in snrs:
            key = f"{rname}_{snr_key(snr)}"
            progress(f"sub5-align {rname} range, SNR {snr:g}")
            idx = rng.choice(target, size=min(n_pairs, len(target)), replace=False)
            x, x1, rot, sh, w = make_pairs(data, idx, snr, max_rot, max_sh, gen)
            res = fft[rname].align_to_reference(x1, x, particle_mask=w, reference_mask=w)
            e = _errors(res, rot, sh)
            seconds[rname, "ref"] += res.seconds
            counts[rname] += len(idx)
            metrics[f"ref_rot_deg_{key}"] = float(e["deg"].mean())
            metrics[f"ref_rot_frob_{key}"] = float(e["frob"].mean())
            metrics[f"ref_trans_vox_{key}"] = float(e["trans"].mean())
            details["ref_std"][key] = {k: float(v.std()) for k, v in e.items()}
            res = learned[rname].align_to_reference(x1, x, particle_mask=w, reference_mask=w)
            e = _errors(res, rot, sh)
            seconds[rname, "learned"] += res.seconds
            details["std"][key] = {k: float(v.std()) for k, v in e.items()}
            details["confidence"][key] = float(res.scores.mean())
            for name, k in (("rot_deg", "deg"), ("rot_frob", "frob"), ("trans_vox", "trans")):
                metrics[f"{name}_{key}"] = float(e[k].mean())
    for rname, suffix in (("local", ""), ("global", "_global")):
        metrics[f"pairs_per_s{suffix}"] = counts[rname] / max(seconds[rname, "learned"], 1e-9)
        metrics[f"ref_pairs_per_s{suffix}"] = counts[rname] / max(seconds[rname, "ref"], 1e-9)
    total = sum(counts.values())
    details["pairs_per_s_both_ranges"] = {
        "learned": total / max(sum(v for (_, m), v in seconds.items() if m == "learned"), 1e-9),
        "ref": total / max(sum(v for (_, m), v in seconds.items() if m == "ref"), 1e-9)}
    _plot(metrics, snrs, out_dir)
    units = {k: ("degrees" if "rot_deg" in k else "Frobenius" if "frob" in k else
                 "voxels" if "trans" in k else "pairs/s") for k in metrics}
    return SuiteResult(metrics=metrics, units=units, references=PAPER, details=details)
