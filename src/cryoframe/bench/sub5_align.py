"""sub5-align: learned pair alignment vs exhaustive FFT alignment on SUB5 (BENCHMARKS.md).

Pairs: a target-pool subtomogram ``X`` (signal ``S`` + its own reconstructed noise) and
``X_1 = W·T(S) + α N_j``: the same particle's signal moved by a known rigid transform ``T``
(cubic B-spline rotation about the box centre, then a Fourier shift), re-filtered by the
microscope-frame wedge ``W`` (±60° about y, so both members miss the same Fourier region), plus
the reconstructed noise box of another particle ``j``, calibrated to the same SNR. Ranges:
``local`` (angle ≤ 15° about a uniform axis, shift ≤ 6 voxels) and ``global`` (uniform SO(3),
shift ≤ 4 voxels). The target is ``T`` with ``X_1 ≈ shift(rotate(X, R), t)``.

Methods (same pairs): the learned aligner (pair encoder; for ``local`` its transformation head
fine-tuned on the local range of App. F on training-pool subtomograms at mixed SNR; for
``global`` the pretrained head) followed by local refinement by wedge-constrained Fourier
correlation; the reference is :class:`FFTAligner` (local: 5° grid inside 15° + 3 refinement
steps; global: 30° grid + 4 refinement steps). Errors: geodesic angle (degrees), ‖R − R̂‖_F
(random guessing ≈ 2.4), translation (voxels); mean ± std; pairs/s from wall time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.baselines.fft_align import FFTAligner, wedge_mask
from cryoframe.bench.results import SuiteResult, progress
from cryoframe.bench.sub5_data import PAPER_NOTE, bench_encoder, build_sub5, load_sub5, snr_key
from cryoframe.geometry.rotations import frobenius_distance, geodesic_distance_deg
from cryoframe.geometry.transforms import rotate_volumes, shift_volumes_fourier
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.tasks.align import LearnedAligner, finetune_transform_head
from cryoframe.train.augment3d import random_rigid_transforms

RANGES = {"local": (15.0, 6.0), "global": (180.0, 4.0)}
PAPER = {"paper_rot_frob_all_snr": "0.25 ± 0.08 (Table 2, ours)",
         "paper_trans_vox_all_snr": "2.0 ± 0.8 (Table 2, ours)",
         "paper_boe_vit": "0.33 rotation / 2.5 voxels",
         "label": "paper, on its own data"}


def make_pairs(data, index: np.ndarray, snr: float, max_rot_deg: float, max_shift_px: float,
               gen: torch.Generator):
    """Pairs ``(X, X_1)`` and their transform (module docstring); rows ``index`` of ``data``."""
    n = len(index)
    idx = torch.as_tensor(index)
    rot, sh = random_rigid_transforms(n, max_rot_deg, max_shift_px, gen)
    s = data.signal[idx]
    moved = shift_volumes_fourier(rotate_volumes(s, rot, order="cubic"), sh)
    w = wedge_mask(tuple(s.shape[1:]))
    h = s.shape[-1] // 2 + 1
    moved = torch.fft.irfftn(torch.fft.rfftn(moved, dim=(-3, -2, -1)) * w[..., :h],
                             s=tuple(s.shape[1:]), dim=(-3, -2, -1))
    other = idx[torch.roll(torch.arange(n), 1)] if n > 1 else idx
    x = combine_signal_noise(s, data.noise[idx], snr)
    x1 = combine_signal_noise(moved, data.noise[other] if n > 1 else -data.noise[idx], snr)
    return x, x1, rot, sh, w


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
    train_pool = np.flatnonzero(data.pool == 0)
    encoder, enc_note = bench_encoder()
    details: dict = {"encoder": enc_note, "note": PAPER_NOTE, "n_pairs_per_snr": n_pairs,
                     "std": {}, "ref_std": {},
                     "fft_local": "5° grid within 15° of identity, 3 refinement steps",
                     "fft_global": "30° so3_grid, 4 refinement steps"}
    learned = {}
    if encoder is not None:
        global_encoder = encoder.copy_frozen() if hasattr(encoder, "copy_frozen") else encoder
        rng_ft = np.random.default_rng([seed, 1])  # pairs do not depend on the encoder's presence
        ft_idx = rng_ft.choice(train_pool, size=min(16 if quick else 400, len(train_pool)),
                            replace=False)
        ft_snrs = rng_ft.choice(np.array(snrs), size=len(ft_idx))
        ft_vols = torch.cat([data.at_snr(float(s), [i]) for i, s in zip(ft_idx, ft_snrs)])
        t_ft = time.perf_counter()
        hist = finetune_transform_head(encoder, ft_vols, epochs=2 if quick else 6, seed=seed,
                                       particle_mask=None)
        details["finetune"] = {"n_volumes": int(len(ft_idx)), "loss": hist,
                               "seconds": round(time.perf_counter() - t_ft, 1)}
        learned = {"local": LearnedAligner(encoder, refine=True, max_shift_px=8.0),
                   "global": LearnedAligner(global_encoder, refine=True, max_shift_px=6.0)}
    fft = {"local": FFTAligner(step_deg=5.0, local_range_deg=15.0, refine_steps=3,
                               refine_start_deg=1.7, max_shift_px=8.0),
           "global": FFTAligner(step_deg=30.0, refine_steps=4, max_shift_px=6.0)}
    metrics: dict[str, float | None] = {}
    time_l = time_r = time_raw = 0.0
    count_l = count_r = 0
    for rname, (max_rot, max_sh) in RANGES.items():
        for snr in snrs:
            key = f"{rname}_{snr_key(snr)}"
            progress(f"sub5-align {rname} range, SNR {snr:g}")
            idx = rng.choice(target, size=min(n_pairs, len(target)), replace=False)
            x, x1, rot, sh, w = make_pairs(data, idx, snr, max_rot, max_sh, gen)
            res = fft[rname].align_to_reference(x1, x, particle_mask=w, reference_mask=w)
            e = _errors(res, rot, sh)
            time_r += res.seconds
            count_r += len(idx)
            metrics[f"ref_rot_deg_{key}"] = float(e["deg"].mean())
            metrics[f"ref_rot_frob_{key}"] = float(e["frob"].mean())
            metrics[f"ref_trans_vox_{key}"] = float(e["trans"].mean())
            details["ref_std"][key] = {k: float(v.std()) for k, v in e.items()}
            if learned:
                raw = learned[rname].predict(x1, x)
                time_raw += raw.seconds
                res = learned[rname].align_to_reference(x1, x, particle_mask=w, reference_mask=w)
                e = _errors(res, rot, sh)
                er = _errors(raw, rot, sh)
                time_l += res.seconds
                count_l += len(idx)
                details.setdefault("no_refine", {})[key] = {k: float(v.mean())
                                                            for k, v in er.items()}
                details["std"][key] = {k: float(v.std()) for k, v in e.items()}
            for name, k in (("rot_deg", "deg"), ("rot_frob", "frob"), ("trans_vox", "trans")):
                metrics[f"{name}_{key}"] = float(e[k].mean()) if learned else None
    metrics["pairs_per_s"] = count_l / time_l if learned and time_l > 0 else None
    metrics["ref_pairs_per_s"] = count_r / time_r if time_r > 0 else None
    details["pairs_per_s_no_refine"] = count_l / time_raw if learned and time_raw > 0 else None
    _plot(metrics, snrs, out_dir)
    units = {k: ("degrees" if "rot_deg" in k else "Frobenius" if "frob" in k else
                 "voxels" if "trans" in k else "pairs/s") for k in metrics}
    return SuiteResult(metrics=metrics, units=units, references=PAPER, details=details)
