"""How close to perfect poses can averaging get at SUB5's SNRs? The ceiling of sub5-average's
"≤ 2.5 nm at SNR 0.1" bar.

The 1,000 7P6Z subtomograms of sub5-average (same rows, same half split and mask as
``average_subtomograms`` with seed 0) are averaged at

* ``true``: their true poses;
* ``oracle_refine``: the poses the full-band wedge-constrained correlation maximum gives when the
  FFT aligner's local refinement (6° first step) starts at the true pose against the clean map.
  Both halves are then aligned to one reference, so noise that resembles it is added coherently
  in both: its half-map FSC is inflated (measured 2.36 nm against 2.68 at the true poses), not a
  better map;
* ``true_jitter{d}``: true rotations each turned by ``d`` degrees about a random axis;
* ``true_mask12px``: the true poses with a 12-voxel instead of the suite's 12.8-voxel FSC mask
  (how fragile the 0.143 crossing is).

Half-map FSC-0.143 resolution (nm) of each. Usage:
``python benchmarks/experiments/average_ceiling.py OUT.jsonl``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from cryoframe.bench.sub5_average import true_pose_resolution_angstrom
from cryoframe.bench.sub5_data import build_sub5, class_maps, load_sub5
from cryoframe.fourier.wedge import wedge_mask
from cryoframe.geometry.rotations import axis_angle_to_matrix, geodesic_distance_deg
from cryoframe.tasks.fft_align import FFTAligner

out = Path(sys.argv[1])
data = load_sub5(build_sub5(Path("/work/bench_out/_sub5_cache"), 2000, 0, False))
idx = np.flatnonzero(data.labels == 0)[:1000]
w = wedge_mask((32, 32, 32))
truth, offsets = data.rotations[idx].float(), data.offsets_px[idx].float()
gen = torch.Generator().manual_seed(0)
with out.open("w") as fh:
    for snr in (0.1, 0.03):
        x = torch.as_tensor(data.at_snr(snr, idx)).float()
        rows = {"true": (truth, offsets)}
        ref = FFTAligner(refine_steps=4, refine_start_deg=6.0, max_shift_px=4.0)
        res = ref.align_to_reference(x, class_maps()[0], particle_mask=w, init_rotations=truth)
        rows["oracle_refine"] = (res.rotations, res.shifts_zyx_px)
        err = geodesic_distance_deg(res.rotations.double(), truth.double())
        for d in (2.0, 3.0):
            ax = torch.randn(len(idx), 3, generator=gen)
            ax = ax / ax.norm(dim=1, keepdim=True)
            rows[f"true_jitter{d:g}"] = (
                truth @ axis_angle_to_matrix(ax, torch.full((len(idx),), np.radians(d))), offsets)
        rows["true_mask12px"] = (truth, offsets)
        for name, (r, t) in rows.items():
            frac = 12.0 / 32 if name == "true_mask12px" else 0.4
            rec = {"snr": snr, "poses": name, "n": len(idx), "mask_radius_px": frac * 32,
                   "res_halfmap_nm": true_pose_resolution_angstrom(
                       x, r, t, w, 0, mask_radius_fraction=frac) / 10.0}
            if name == "oracle_refine":
                rec.update(rot_err_mean_deg=float(err.mean()),
                           rot_err_median_deg=float(err.median()),
                           shift_err_mean_px=float((res.shifts_zyx_px - offsets).norm(dim=1).mean()))
            print(json.dumps(rec), flush=True)
            fh.write(json.dumps(rec) + "\n")
