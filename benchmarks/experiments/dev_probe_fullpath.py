"""Model selection on the development classes through the *full* tilt-series path.

The development classes (:data:`~cryoframe.simulate.class_bank.DEV_MAPS`: never trained on, never
benchmarked) simulated exactly as SUB5 is (:func:`cryoframe.bench.sub5_data.sub5_config` with
these five structures, 200 rows per class, seed 7, cached in ``$CRYOFRAME_CACHE``), scored with
the protocol of encoder-probe (SNR-100 pool + 10 % of the target pool train a linear probe and a
5-NN; test on 80 %), mean over three splits, for every encoder file given and the invariant
features (and their concatenation with the first encoder) in the same run, each
computed once per SNR.

``python benchmarks/experiments/dev_probe_fullpath.py ENC1 [ENC2 ...]`` prints one JSON line per SNR.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from cryoframe.baselines.invariant_features import invariant_features
from cryoframe.bench.encoder_probe import _embed, _score
from cryoframe.bench.sub5_data import load_sub5, sub5_config
from cryoframe.models.pretrained import load_encoder_file
from cryoframe.simulate.class_bank import DEV_MAPS
from cryoframe.simulate.engine import simulate_subtomograms
from cryoframe.tasks.classify import split_1_1_8

if __name__ == "__main__":
    torch.set_num_threads(1)
    cache = Path(os.environ.get("CRYOFRAME_CACHE", "~/.cache/cryoframe")).expanduser()
    cfg = sub5_config(200, 7, False).model_copy(update={"structures": list(DEV_MAPS)})
    d = load_sub5(simulate_subtomograms(cfg, cache / "dev_full_n200_seed7.zarr"))
    encoders = {p: load_encoder_file(p)[0].eval() for p in sys.argv[1:]}
    c, t = np.where(d.pool == 0)[0], np.where(d.pool == 1)[0]
    yc, yt = d.labels[c], d.labels[t]

    def features(vols):
        """Every encoder's features and the invariant features of ``vols`` (each computed once)."""
        f = {name: _embed(enc, vols) for name, enc in encoders.items()}
        f["invariant"] = invariant_features(vols).numpy()
        f["concat"] = np.concatenate([f[sys.argv[1]], f["invariant"]], axis=1)
        return f

    fc = features(d.at_snr(100.0, c))
    for snr in (0.1, 0.05, 0.03, 0.01):
        ft = features(d.at_snr(snr, t))
        row = {"snr": snr}
        for k in fc:
            scores = [_score(fc[k], yc, ft[k], yt, split_1_1_8(yt, seed=s), s) for s in range(3)]
            lin, knn = np.mean(scores, 0)
            row[k] = {"linear": round(float(lin), 1), "knn": round(float(knn), 1)}
        print(json.dumps(row), flush=True)
