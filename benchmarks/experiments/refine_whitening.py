"""Shell weighting of the local Fourier refinement, against a clean reference.

Does it make the refinement more precise?

The 200 7P6Z subtomograms of ``posterior_fft_refine.py`` (SUB5 target pool) and the clean 7P6Z
map are both filtered per Fourier shell, then the FFT aligner's local refinement (first step 6°)
starts at the true pose:

* ``plain``: no filter (the unweighted correlation sub5-average's refinement uses);
* ``white``: 1/√N(k), N the particles' noise power per shell (known here: SUB5 keeps the noise
  apart), so the correlation weights each shell by 1/N (the matched filter for coloured noise);
* ``wiener``: √(S(k)/N(k)), S the particles' signal power (weights by the spectral SNR).

Usage: ``python benchmarks/experiments/refine_whitening.py OUT.jsonl``.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from _pose_record import pose_record, rotation_error_deg

from cryoframe.bench.sub5_data import build_sub5, class_maps, load_sub5
from cryoframe.fourier.wedge import wedge_mask
from cryoframe.geometry.grids import radial_frequency
from cryoframe.tasks.fft_align import FFTAligner

N = 32
out = Path(sys.argv[1])
data = load_sub5(build_sub5(Path("/work/bench_out/_sub5_cache"), 2000, 0, False))
rows = np.flatnonzero((data.labels == 0) & (data.pool == 1))[:200]
ref = torch.as_tensor(class_maps()[0]).float()
w = wedge_mask((N, N, N))
truth = data.rotations[rows].float()
shell = (radial_frequency((N, N, N), rfft=True) * N).round().long().clamp(max=N // 2)


def shell_power(v: torch.Tensor) -> torch.Tensor:
    """Mean power per shell `(N // 2 + 1,)` of `(B, N, N, N)` volumes inside the wedge."""
    m = w[..., : N // 2 + 1]
    p = ((torch.fft.rfftn(v, dim=(-3, -2, -1)).abs() ** 2) * m).sum(0).flatten()
    cnt = torch.zeros(N // 2 + 1).index_add_(0, shell.flatten(), m.flatten().float() * len(v))
    return torch.zeros(N // 2 + 1).index_add_(0, shell.flatten(), p) / cnt.clamp_min(1)


def shell_filter(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``v`` multiplied per shell by ``f`` in Fourier space."""
    return torch.fft.irfftn(torch.fft.rfftn(v, dim=(-3, -2, -1)) * f[shell], s=(N, N, N),
                            dim=(-3, -2, -1))


noise_power = shell_power(torch.as_tensor(data.noise[rows]).float())
signal_power = shell_power(torch.as_tensor(data.signal[rows]).float())
filters = {"plain": torch.ones(N // 2 + 1), "white": 1 / noise_power.sqrt(),
           "wiener": torch.sqrt(signal_power / noise_power)}
with out.open("w") as fh:
    for snr in (0.1, 0.03):
        x = torch.as_tensor(data.at_snr(snr, rows)).float()
        for name, f in filters.items():
            f = f.clone()
            f[0] = 0.0
            al = FFTAligner(refine_steps=4, refine_start_deg=6.0, max_shift_px=4.0)
            t0 = time.perf_counter()
            rot = al.align_to_reference(shell_filter(x, f), shell_filter(ref[None], f)[0],
                                        particle_mask=w, init_rotations=truth).rotations
            pose_record(fh, rotation_error_deg(rot, truth), time.perf_counter() - t0,
                        snr=snr, filter=name, start="true pose")
