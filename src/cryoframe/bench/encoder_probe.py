"""encoder-probe: frozen features of the shipped subtomogram encoder on structures it never saw.

Data: SUB5 (:mod:`cryoframe.bench.sub5_data`: five benchmark structures never used in
pretraining, full tilt-series path with per-tilt CTF) and the same five classes from the fast
path (ideal wedge, no CTF, white calibrated noise), at SNR 0.1 / 0.05 / 0.03 / 0.01.

Protocol (that of sub5-classify): the SNR-100 pool plus the 10 % training part of a stratified
1:1:8 split of the target pool train a linear probe (standardisation + logistic regression) and a
5-NN (cosine); accuracy on the 80 % test part. Feature sets, measured in the same run on the same
split: the shipped encoder (``encoder``), the same architecture at its random initialisation
(``random``, seed of the run), rotation-invariant handcrafted features (``invariant``,
:mod:`cryoframe.baselines.invariant_features`) and encoder + invariant features concatenated
(``concat``). Metric names: ``probe_<set>_snr<s>`` and ``knn_<set>_snr<s>`` on the full path,
``probe_<set>_fast_snr<s>`` on the fast path.

Phase selection of APT-ViT (the paper's backbone, registry ``apt_vit_cpu``), on SUB5 boxes at
SNR 0.1: mean entropy of the selection softmax (nats; uniform = ln 512 = 6.24), agreement of the
chosen phase between two independent noise draws of the same boxes (each box's signal part with
its own reconstructed tilt noise and with that of another box; exact and within one voxel per
axis), for the centroid score used now and for the learned steerable score alone (the first
implementation, random initialisation; its raw logit spread is reported too); ``selector_share``: the selector's forward + backward time over a whole
supervised training step (batch 32, one thread), for the default and with the learned score.

Full (sized to a 2-core CPU): SUB5 at 400 rows per class (1,000 per pool; the linear probe is
tested on 800 target boxes per SNR), fast path 200 per class and pool. Quick: 20 rows per class,
fast path 20.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from cryoframe.bench.results import SuiteResult, progress
from cryoframe.bench.sub5_data import PAPER_NOTE, SUB5_CLASSES, build_sub5, load_sub5, snr_key

SNRS = (0.1, 0.05, 0.03, 0.01)
SETS = ("encoder", "random", "invariant", "concat")


def _embed(encoder, vols: torch.Tensor, batch: int = 64) -> np.ndarray:
    from cryoframe.train.loop import embed_for_inference

    return embed_for_inference(encoder, vols, batch).numpy()


def _feature_sets(encoder, random_enc, vols: torch.Tensor) -> dict[str, np.ndarray]:
    from cryoframe.baselines.invariant_features import invariant_features

    enc, rnd = _embed(encoder, vols), _embed(random_enc, vols)
    inv = invariant_features(vols).numpy()
    return {"encoder": enc, "random": rnd, "invariant": inv,
            "concat": np.concatenate([enc, inv], axis=1)}


def _score(f_clean, y_clean, f_t, y_t, split, seed: int) -> tuple[float, float]:
    from cryoframe.tasks.classify import knn_classifier, linear_probe

    xtr = np.concatenate([f_clean, f_t[split.train]])
    ytr = np.concatenate([y_clean, y_t[split.train]])
    xte, yte = f_t[split.test], y_t[split.test]
    lin = 100.0 * float((linear_probe(xtr, ytr, seed=seed).predict(xte) == yte).mean())
    knn = 100.0 * float((knn_classifier(xtr, ytr, 5).predict(xte) == yte).mean())
    return lin, knn


def _fast_sub5(n_per_class: int, seed: int):
    """Clean fast-path boxes of the SUB5 classes: two pools of ``n_per_class`` each."""
    from cryoframe.bench.sub5_data import VOXEL_ANGSTROM
    from cryoframe.geometry.rotations import random_rotations
    from cryoframe.simulate.config import DensityConfig
    from cryoframe.simulate.engine import build_densities
    from cryoframe.simulate.fastpath import FastSubtomogramSimulator

    dens = build_densities(SUB5_CLASSES, DensityConfig(voxel_size_angstrom=VOXEL_ANGSTROM,
                                                        resolution_angstrom=10.0))
    sim = FastSubtomogramSimulator(dens, 32, -60.0, 60.0, True)
    n = 2 * n_per_class * len(SUB5_CLASSES)
    labels = np.tile(np.arange(len(SUB5_CLASSES)), 2 * n_per_class)
    gen = torch.Generator().manual_seed(seed + 4242)
    R = random_rotations(n, generator=gen)
    off = (torch.rand((n, 3), generator=gen) * 2 - 1)
    clean = sim.simulate(labels, R, off)
    pool = (np.arange(n) % (2 * len(SUB5_CLASSES)) >= len(SUB5_CLASSES)).astype(int)
    return clean, labels, pool


def _run_protocol(name: str, clean_vols, y_clean, target_at, y_t, encoder, random_enc,
                  seed: int, suffix: str, metrics: dict) -> None:
    from cryoframe.tasks.classify import split_1_1_8

    f_clean = _feature_sets(encoder, random_enc, clean_vols)
    split = split_1_1_8(y_t, seed=seed)
    for snr in SNRS:
        progress(f"encoder-probe {name}: SNR {snr:g}")
        f_t = _feature_sets(encoder, random_enc, target_at(snr))
        for s in SETS:
            lin, knn = _score(f_clean[s], y_clean, f_t[s], y_t, split, seed)
            metrics[f"probe_{s}{suffix}_{snr_key(snr)}"] = lin
            metrics[f"knn_{s}{suffix}_{snr_key(snr)}"] = knn


def selection_stats(embed, vols_a: torch.Tensor, vols_b: torch.Tensor) -> dict[str, float]:
    """Entropy of the phase softmax and agreement of two noise draws (exact, ≤ 1 voxel)."""
    from cryoframe.models.polyphase import phase_offsets

    with torch.no_grad():
        la, lb = embed.phase_logits(vols_a[:, None]), embed.phase_logits(vols_b[:, None])
    p = la.softmax(-1)
    ent = float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())
    a, b = la.argmax(-1), lb.argmax(-1)
    offs = phase_offsets(embed.patch)
    d = torch.remainder(offs[a] - offs[b] + embed.patch[0] // 2, embed.patch[0]) \
        - embed.patch[0] // 2
    out = {"entropy_nats": ent, "agree_exact": float((a == b).float().mean()),
           "agree_1vox": float((d.abs() <= 1).all(-1).float().mean()),
           "logit_std": float(la.std(-1).mean())}
    if embed.selector is not None:  # the learned score before its z-scoring
        with torch.no_grad():
            out["raw_learned_logit_std"] = float(embed.selector(vols_a[:, None]).std(-1).mean())
    return out


def selector_share(selector_learned: bool, batch: int = 32, repeats: int = 3,
                   seed: int = 0) -> dict[str, float]:
    """Selector forward + backward time over a supervised APT-ViT step (one thread)."""
    from cryoframe.models import create_model

    torch.manual_seed(seed)
    model = create_model("apt_vit_cpu", num_classes=10, selector_learned=selector_learned).train()
    x = torch.randn(batch, 1, 32, 32, 32)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), 1e-4)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def select():
        logits = model.embed.phase_logits(x)
        if logits.requires_grad:
            logits.sum().backward()

    out = {}
    for f, key in ((step, "step_s"), (select, "selector_s")):
        f()
        t0 = time.perf_counter()
        for _ in range(repeats):
            f()
        out[key] = (time.perf_counter() - t0) / repeats
    out["share"] = out["selector_s"] / out["step_s"]
    return out


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Run the suite (module docstring)."""
    from cryoframe.models import create_model
    from cryoframe.models.apt import APTEmbed
    from cryoframe.models.pretrained import load_encoder
    from cryoframe.simulate.noise import add_noise, combine_signal_noise

    t0 = time.perf_counter()
    torch.set_num_threads(1)
    encoder, meta = load_encoder()
    torch.manual_seed(seed)
    random_enc = create_model(meta["model"]).eval()
    metrics: dict[str, float | None] = {}
    # full tilt-series path
    data = load_sub5(build_sub5(Path(out_dir).parent / "_sub5_cache", 20 if quick else 400,
                                seed, quick))
    ci, ti = np.flatnonzero(data.pool == 0), np.flatnonzero(data.pool == 1)
    _run_protocol("full path", data.at_snr(100.0, ci), data.labels[ci],
                  lambda s: data.at_snr(s, ti), data.labels[ti], encoder, random_enc, seed, "",
                  metrics)
    # fast path (no CTF, white calibrated noise)
    clean, labels, pool = _fast_sub5(20 if quick else 200, seed)
    fc, ft = np.flatnonzero(pool == 0), np.flatnonzero(pool == 1)
    _run_protocol("fast path", add_noise(clean[fc], 100.0, seed, fc), labels[fc],
                  lambda s: add_noise(clean[ft], s, seed + 1, ft), labels[ft], encoder,
                  random_enc, seed, "_fast", metrics)
    # phase selection of APT-ViT on SUB5 at SNR 0.1 (two noise draws of the same boxes)
    progress("encoder-probe: phase selection and selector share")
    sub = ti[: 256 if not quick else len(ti)]
    g = torch.Generator().manual_seed(seed + 77)
    perm = torch.randperm(len(sub), generator=g).numpy()
    va = data.at_snr(0.1, sub)
    # the second draw: each box's signal with the reconstructed tilt noise of another box
    vb = combine_signal_noise(data.signal[sub], data.noise[sub[perm]], 0.1)
    stats = {}
    for key, kw in (("centroid", dict(selector_learned=False)),
                    ("learned_only", dict(prior_gain=0.0, selector_learned=True))):
        torch.manual_seed(seed)
        stats[key] = selection_stats(APTEmbed(32, 8, embed_dim=16, **kw), va, vb)
        for k, v in stats[key].items():
            metrics[f"selector_{k}_{key}"] = v
    share = selector_share(False, batch=8 if quick else 32)
    share_learned = selector_share(True, batch=8 if quick else 32)
    metrics["selector_share"] = share["share"]
    metrics["selector_share_learned"] = share_learned["share"]
    # throughput of the shipped encoder (inference, one thread)
    x = data.at_snr(0.1, ti[:64])
    t1 = time.perf_counter()
    _embed(encoder, x)
    metrics["encoder_samples_per_s"] = len(x) / (time.perf_counter() - t1)
    units = {k: "percent" for k in metrics if k.startswith(("probe_", "knn_"))}
    units.update({"selector_share": "fraction", "selector_share_learned": "fraction",
                  "encoder_samples_per_s": "1/s"})
    details = {"encoder": meta, "n_clean_pool": int(len(ci)), "n_target_pool": int(len(ti)),
               "n_fast_per_pool": int(len(fc)), "selector_timing_s": {"default": share,
                                                                     "learned": share_learned},
               "selection_box_count": int(len(sub)), "note": PAPER_NOTE,
               "uniform_entropy_nats": math.log(512),
               "wall_time_s": round(time.perf_counter() - t0, 1)}
    return SuiteResult(metrics=metrics, units=units, details=details)
