"""Local Fourier refinement after the posterior aligner, against a clean reference.

Does a classical local refinement recover the FFT search's precision in the averaging regime
while keeping the posterior's robustness?

Same data as ``align_to_clean_reference.py`` (7P6Z subtomograms of SUB5's target pool aligned over
all of SO(3) to the clean 7P6Z density). Variants:

* ``fft``: the FFT search of sub5-average (30° grid + 4 refinement steps);
* ``posterior``: the posterior aligner with the shipped head;
* ``posterior+refine{d}``: the posterior's pose, then the FFT aligner's full-size local refinement
  (pattern search over ±d°, 4 halvings, wedge-constrained unweighted correlation at full band);
* ``truth+refine{d}``: the same refinement started at the true pose (the precision of the
  correlation maximum itself).

Usage: ``python benchmarks/experiments/posterior_fft_refine.py N_PER_SNR OUT.jsonl``.
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
truth = data.rotations[rows]
post = PosteriorAligner(load_correlation_head(), range_deg=180.0, max_shift_px=4.0)
fft = FFTAligner(step_deg=30.0, refine_steps=4, max_shift_px=4.0)


def refiner(start_deg):
    """The FFT aligner's local refinement, first step ``start_deg``."""
    return FFTAligner(step_deg=30.0, refine_steps=4, refine_start_deg=start_deg, max_shift_px=4.0)


with out.open("w") as fh:
    for snr in (0.1, 0.03):
        x = data.at_snr(snr, rows)
        t0 = time.perf_counter()
        res_p = post.align_to_reference(x, ref, particle_mask=w)
        dt_p = time.perf_counter() - t0
        variants = {"posterior": (res_p.rotations, dt_p)}
        t0 = time.perf_counter()
        variants["fft"] = (fft.align_to_reference(x, ref, particle_mask=w).rotations,
                           time.perf_counter() - t0)
        for d in (3.0, 6.0):
            t0 = time.perf_counter()
            r = refiner(d).align_to_reference(x, ref, particle_mask=w,
                                              init_rotations=res_p.rotations).rotations
            variants[f"posterior+refine{d:g}"] = (r, dt_p + time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = refiner(d).align_to_reference(x, ref, particle_mask=w,
                                              init_rotations=truth.float()).rotations
            variants[f"truth+refine{d:g}"] = (r, time.perf_counter() - t0)
        for name, (rot, dt) in variants.items():
            pose_record(fh, rotation_error_deg(rot, truth), dt, snr=snr, aligner=name)
