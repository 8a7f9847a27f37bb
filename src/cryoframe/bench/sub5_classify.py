"""sub5-classify: classification protocols on SUB5 beside same-run baselines (BENCHMARKS.md).

Per target SNR: the target pool is split 1:1:8 (stratified, :func:`split_1_1_8`); every method
trains on the whole SNR-100 pool + the 10 % training part of the target SNR, may use the 10 %
validation part for model selection, and is scored on the 80 % test part:

* ``knn`` / ``linear`` / ``mlp``: k-NN, linear probe and the 3-layer MLP head (40 epochs) on the
  frozen pretrained encoder's embeddings (missing when no pretrained encoder is installed);
* ``invariant``: rotation-invariant handcrafted features + logistic regression;
* ``cnn``: a small 3D CNN trained from scratch on the same volumes (3 epochs, best validation
  epoch kept: the CPU budget of the full run);
* ``template``: template matching with the clean class maps (an upper reference; scored on a
  random subset of the test part, size in ``details``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from cryoframe.bench.results import SuiteResult, progress
from cryoframe.bench.sub5_data import (
    PAPER_NOTE,
    SUB5_CLASSES,
    bench_single_encoder,
    build_sub5,
    class_maps,
    load_sub5,
    snr_key,
)

PAPER_MLP = {"snr0.1": 67.42, "snr0.05": 53.13, "snr0.03": 40.10, "snr0.01": 27.50}


def _embed(encoder, volumes: torch.Tensor, batch: int = 64) -> np.ndarray:
    from cryoframe.train.loop import embed_for_inference

    return embed_for_inference(encoder, volumes, batch).numpy()


def _plot(metrics: dict, snrs, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cryoframe._atomic import atomic_savefig

    methods = ["knn", "linear", "mlp", "invariant", "cnn", "template"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    width = 0.13
    for j, m in enumerate(methods):
        vals = [metrics.get(f"acc_{m}_{snr_key(s)}") for s in snrs]
        xs = np.arange(len(snrs)) + (j - 2.5) * width
        ax.bar(xs, [np.nan if v is None else v for v in vals], width, label=m)
    ax.axhline(100 / len(SUB5_CLASSES), color="k", lw=0.8, ls=":", label="chance")
    ax.set_xticks(np.arange(len(snrs)), [f"SNR {s:g}" for s in snrs])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("sub5-classify (same run, same split)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "sub5_classify.png", format="png")
    plt.close(fig)


def run(quick: bool, out_dir: Path, seed: int, n_per_class: int | None = None) -> SuiteResult:
    """Run the suite (see module docstring); quick: 2 SNRs, small data, short training.

    ``n_per_class`` overrides the SUB5 size (rows per class, both pools) of a full run, for
    reduced-size experiments; ``cryoframe bench`` never sets it.
    """
    from cryoframe.baselines.cnn3d import predict_cnn3d, train_cnn3d
    from cryoframe.baselines.fft_align import FFTAligner, wedge_mask
    from cryoframe.baselines.invariant_features import InvariantFeatureClassifier
    from cryoframe.baselines.template_match import template_match_scores
    from cryoframe.tasks.classify import evaluate_protocols, split_1_1_8

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    n_per_class = n_per_class or (20 if quick else 2000)
    snrs = (0.1, 0.01) if quick else (0.1, 0.05, 0.03, 0.01, 0.005)
    store = build_sub5(out_dir.parent / "_sub5_cache", n_per_class, seed, quick)
    data = load_sub5(store)
    t_data = time.perf_counter() - t0
    clean_idx = np.flatnonzero(data.pool == 0)
    target_idx = np.flatnonzero(data.pool == 1)
    y_clean, y_target = data.labels[clean_idx], data.labels[target_idx]
    x_clean = data.at_snr(100.0, clean_idx)
    encoder, enc_note = bench_single_encoder()
    emb_clean = None if encoder is None else _embed(encoder, x_clean)
    templates = class_maps()
    wedge = wedge_mask((32, 32, 32))
    tm_aligner = FFTAligner(step_deg=40.0, refine_steps=2)
    n_template = 25 if quick else 300
    rng = np.random.default_rng(seed)
    metrics: dict[str, float | None] = {}
    details: dict = {"n_clean_pool": int(len(clean_idx)), "n_target_pool": int(len(target_idx)),
                     "class_counts_target": np.bincount(y_target, minlength=5).tolist(),
                     "encoder": enc_note, "data_seconds": round(t_data, 1),
                     "note": PAPER_NOTE, "template_test_subset": {}}
    for snr in snrs:
        key = snr_key(snr)
        progress(f"sub5-classify SNR {snr:g}: encoder protocols")
        split = split_1_1_8(y_target, seed=seed)
        x_t = data.at_snr(snr, target_idx)
        if encoder is not None:
            emb_t = _embed(encoder, x_t)
            acc = evaluate_protocols(emb_clean, y_clean, emb_t, y_target, split, seed=seed,
                                     epochs=40)
            for m in ("knn", "linear", "mlp"):
                metrics[f"acc_{m}_{key}"] = acc[m]
        else:
            for m in ("knn", "linear", "mlp"):
                metrics[f"acc_{m}_{key}"] = None
        train_x = torch.cat([x_clean, x_t[split.train]])
        train_y = np.concatenate([y_clean, y_target[split.train]])
        test_x, test_y = x_t[split.test], y_target[split.test]
        progress(f"sub5-classify SNR {snr:g}: invariant features, 3D CNN, template matching")
        inv = InvariantFeatureClassifier(seed=seed).fit(train_x, train_y)
        metrics[f"acc_invariant_{key}"] = 100.0 * float((inv.predict(test_x) == test_y).mean())
        cnn = train_cnn3d(train_x, train_y, x_t[split.val], y_target[split.val], n_classes=5,
                          epochs=3, seed=seed)  # CPU budget of the full run
        metrics[f"acc_cnn_{key}"] = 100.0 * float(
            (predict_cnn3d(cnn, test_x).argmax(1) == test_y).mean())
        sub = rng.choice(len(test_y), size=min(n_template, len(test_y)), replace=False)
        scores = template_match_scores(test_x[sub], templates, wedge, tm_aligner)
        metrics[f"acc_template_{key}"] = 100.0 * float((scores.argmax(1) == test_y[sub]).mean())
        details["template_test_subset"][key] = int(len(sub))
        details[f"split_{key}"] = [int(len(split.train)), int(len(split.val)),
                                   int(len(split.test))]
    _plot(metrics, snrs, out_dir)
    units = {k: "%" for k in metrics}
    references = {f"paper_acc_mlp_{k}": v for k, v in PAPER_MLP.items()}
    references["label"] = "paper, on its own data (frozen APT-ViT + MLP head, Table 1)"
    return SuiteResult(metrics=metrics, units=units, references=references, details=details)
