"""Model selection on the development classes (never trained on, never benchmarked), isolated and
crowded boxes: linear probe / 5-NN of encoder files beside invariant features, same data.

``python benchmarks/experiments/dev_probe_crowded.py ENC1 [ENC2 ...]`` prints one JSON line per
(SNR, crowding) with every encoder's and the invariant features' accuracy.
"""

import json
import sys

import numpy as np
import torch

from cryoframe.baselines.invariant_features import invariant_features
from cryoframe.models.pretrained import load_encoder_file
from cryoframe.tasks.classify import linear_probe
from cryoframe.train.knn_monitor import knn_accuracy
from cryoframe.train.supervised import dev_probe, dev_probe_data

if __name__ == "__main__":
    torch.set_num_threads(1)
    encoders = {p: load_encoder_file(p)[0] for p in sys.argv[1:]}
    for crowd in (0.0, 0.7):
        for snr in (0.1, 0.03):
            d = dev_probe_data(60, snr, neighbours_mean=crowd)
            y = d["labels"]
            idx = np.random.default_rng(0).permutation(len(y))
            tr, te = idx[: len(y) // 2], idx[len(y) // 2:]
            fc, ft = invariant_features(d["clean"]).numpy(), invariant_features(d["target"]).numpy()
            xtr, ytr = np.concatenate([fc, ft[tr]]), np.concatenate([y, y[tr]])
            row = {"snr": snr, "neighbours_mean": crowd,
                   "invariant_linear": float((linear_probe(xtr, ytr).predict(ft[te]) == y[te]).mean()
                                             * 100),
                   "invariant_knn": knn_accuracy(xtr, ytr, ft[te], y[te])}
            for p, e in encoders.items():
                row[p] = dev_probe(e, d)
            print(json.dumps(row), flush=True)
