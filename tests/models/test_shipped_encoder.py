"""The shipped subtomogram encoder tells apart structures it never saw, unlike its random init."""

import numpy as np
import torch

from cryoframe.models import create_model
from cryoframe.models.pretrained import load_encoder
from cryoframe.simulate.class_bank import ClassBank
from cryoframe.train.labelled_source import SNRSchedule, TiltMatchedSource
from cryoframe.train.loop import embed_for_inference


def _two_unseen_classes():
    """Bundled 10 Å maps of two SUB5 structures (never in pretraining)."""
    from cryoframe.data import map_path
    from cryoframe.simulate.density import load_density

    names = ["1BXN", "3CF3"]
    dens = [torch.as_tensor(np.asarray(load_density(str(map_path(n))).data)) for n in names]
    return ClassBank(dens, names)


def _loo_1nn(emb: np.ndarray, y: np.ndarray) -> float:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return float((y[sim.argmax(1)] == y).mean())


def test_shipped_encoder_separates_unseen_structures_better_than_random_init():
    enc, meta = load_encoder()
    assert meta["model"] == "cnn3d_cpu" and meta["steps"] > 0
    src = TiltMatchedSource(_two_unseen_classes(), seed=11)
    batch = src.batch(0, 64, SNRSchedule(snr_start=0.3, snr_end=0.3, snr_high=0.3,
                                          clean_fraction=0.0))
    y = batch["labels"].numpy()
    acc = _loo_1nn(embed_for_inference(enc, batch["volumes"]).numpy(), y)
    torch.manual_seed(0)
    rnd = create_model(meta["model"]).eval()
    acc_rnd = _loo_1nn(embed_for_inference(rnd, batch["volumes"]).numpy(), y)
    assert acc >= 0.75 and acc > acc_rnd + 0.1, (acc, acc_rnd)
