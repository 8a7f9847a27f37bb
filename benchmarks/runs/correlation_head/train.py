"""Train the shipped correlation head (posterior aligner) on the full-path bank store.

The store (``train/fullpath_bank.py``: the 134 training classes simulated through the full
tilt-series path with SUB5's physics, signal and noise kept apart) never holds a SUB5 structure.
Every 3rd row is used. Usage::

    python benchmarks/runs/correlation_head/train.py STORE OUT.pt STEPS [SEED [REF_SNR_LO,REF_SNR_HI]]
"""

import json
import sys
import time

import numpy as np
import torch

from cryoframe.io.store import SubtomoStore
from cryoframe.train.correlation_head import train_correlation_head

torch.set_num_threads(1)
store, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
ref_range = tuple(float(v) for v in sys.argv[5].split(",")) if len(sys.argv) > 5 else None
st = SubtomoStore.open(store)
n = len(st.read_table())
rows = np.arange(0, n, 3)
t0 = time.perf_counter()
signal = torch.from_numpy(np.asarray(st.group["volumes"][:n], dtype=np.float32)[rows])
noise = torch.from_numpy(np.asarray(st.group["noise"][:n], dtype=np.float32)[rows])
print(f"loaded {len(rows)} boxes in {time.perf_counter() - t0:.0f} s", flush=True)
t0 = time.perf_counter()


def show(rec):
    """Print every 10th step's record."""
    if rec["step"] % 10 == 0:
        print(json.dumps({**{k: round(v, 4) if isinstance(v, float) else v
                             for k, v in rec.items()},
                          "s": round(time.perf_counter() - t0, 1)}), flush=True)


train_correlation_head(signal, noise, out, steps=steps, seed=seed, progress=show,
                       voxel_size_angstrom=float(st.group.attrs["voxel_size_angstrom"]),
                       reference_snr_range=ref_range)
