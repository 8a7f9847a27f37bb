"""Pose accuracy against a clean reference: the regime of averaging (a high-SNR average as the
reference), which sub5-align (two noisy boxes) does not probe.

7P6Z subtomograms of SUB5 (target pool) at each SNR are aligned over all of SO(3) to the clean
7P6Z density (the ground truth the averaging is scored against), by the FFT search of
sub5-average (30° grid + 4 refinement steps) and by the posterior aligner with the shipped head.
Errors against the true poses: rotation (degrees, mean and median), translation (voxels).
A third variant, ``posterior_3fine``, adds a third fine grid (1.8°) to the same aligner: is the
last fine step what limits its precision against a clean reference?
With a third argument, ``posterior_head2`` runs the same aligner with that head file (e.g. one
trained with a cleaner reference for half the pairs, ``reference_snr_range``).
Usage: ``python benchmarks/experiments/align_to_clean_reference.py N_PER_SNR OUT.jsonl [HEAD.pt]``.
"""

import sys
import time
from pathlib import Path

import numpy as np
from _pose_record import pose_record, rotation_error_deg

from cryoframe.bench.sub5_data import build_sub5, class_maps, load_sub5
from cryoframe.fourier.wedge import wedge_mask
from cryoframe.models.pretrained import load_correlation_head
from cryoframe.tasks.fft_align import FFTAligner
from cryoframe.tasks.posterior_align import PosteriorAligner

n, out = int(sys.argv[1]), Path(sys.argv[2])
data = load_sub5(build_sub5(Path("/work/bench_out/_sub5_cache"), 2000, 0, False))
rows = np.flatnonzero((data.labels == 0) & (data.pool == 1))[:n]
ref = class_maps()[0]
w = wedge_mask((32, 32, 32))
aligners = {"fft": FFTAligner(step_deg=30.0, refine_steps=4, max_shift_px=4.0),
            "posterior": PosteriorAligner(load_correlation_head(), range_deg=180.0,
                                          max_shift_px=4.0)}
fine3 = PosteriorAligner(load_correlation_head(), range_deg=180.0, max_shift_px=4.0)
fine3.fine_steps_deg = (*fine3.fine_steps_deg, fine3.fine_steps_deg[-1] / 2)
aligners["posterior_3fine"] = fine3
if len(sys.argv) > 3:
    aligners["posterior_head2"] = PosteriorAligner(load_correlation_head(sys.argv[3]),
                                                   range_deg=180.0, max_shift_px=4.0)
truth = data.rotations[rows]
with out.open("w") as fh:
    for snr in (0.1, 0.03):
        x = data.at_snr(snr, rows)
        for name, al in aligners.items():
            t0 = time.perf_counter()
            res = al.align_to_reference(x, ref, particle_mask=w)
            dt = time.perf_counter() - t0
            err = rotation_error_deg(res.rotations, truth)
            err_t = rotation_error_deg(res.rotations, truth.transpose(1, 2))
            if float(err_t.median()) < float(err.median()):  # report the convention that fits
                err = err_t
            pose_record(fh, err, dt, snr=snr, aligner=name)
