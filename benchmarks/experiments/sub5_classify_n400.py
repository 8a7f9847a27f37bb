"""sub5-classify at reduced size (400 SUB5 rows per class instead of 2,000), all else as the full
suite: five SNRs, 3D CNN 3 epochs, template matching on 300 test boxes per SNR.

Run from the repository root: ``python benchmarks/experiments/sub5_classify_n400.py OUT``. Writes
``OUT/results.json`` in the suite format with ``details.n_per_class = 400``; it is an interim check
of the encoder issue's sub5-classify figure, not the committed full run.
"""

import sys
import time
from pathlib import Path

import torch

from cryoframe.bench import sub5_classify
from cryoframe.bench.results import write_results

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = sub5_classify.run(quick=False, out_dir=out, seed=0, n_per_class=400)
    res.details["n_per_class"] = 400
    write_results("sub5-classify", False, 0, res, out, time.perf_counter() - t0)
