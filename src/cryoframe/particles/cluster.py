"""Pose clustering and k-NN evaluation on particle features (003: k-means++ in feature space,
k-NN score eq. 1 with k = 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from cryoframe._errors import InputError
from cryoframe.io.star import write_particles
from cryoframe.models.pretrained import load_particle_encoder
from cryoframe.particles.embed import DEFAULT_IN_PLANE_ROTATIONS, embed_images
from cryoframe.particles.stack import iter_oriented_batches, read_particle_table
from cryoframe.tasks.cluster import kmeans_pp
from cryoframe.train.knn_monitor import knn_accuracy

__all__ = ["kmeans_pp", "knn_split_accuracy", "cluster_star", "CLUSTER_COLUMN"]

CLUSTER_COLUMN = "rlnClassNumber"


def _check(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        raise InputError(f"features of shape {x.shape}", field="features",
                         expected="(n, d) finite values with n >= 2")
    return x


def knn_split_accuracy(features, labels, k: int = 1, test_fraction: float = 0.5, seed: int = 0,
                       metric: str = "cosine", standardise: bool = False) -> float:
    """k-NN accuracy (eq. 1) of a stratified random split: fit on one part, score the other.

    Parameters
    ----------
    features : array
        `(n, d)`.
    labels : array
        `(n,)` integer classes.
    k : int
        Neighbours (1 in the paper).
    test_fraction : float
        Fraction held out.
    seed : int
        Seed of the split.
    metric : str
        ``"cosine"`` (learned features) or ``"euclidean"``.
    standardise : bool
        z-score each feature with the training part's statistics first (for hand-made features
        of different units).

    Returns
    -------
    float
        Accuracy in percent (:func:`cryoframe.train.knn_monitor.knn_accuracy` on the split).
    """
    x = _check(features)
    y = np.asarray(labels)
    if len(y) != len(x):
        raise InputError(f"{len(y)} labels for {len(x)} features", field="labels")
    strat = y if np.bincount(np.unique(y, return_inverse=True)[1]).min() >= 2 else None
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=strat)
    return knn_accuracy(xtr, ytr, xte, yte, k=k, metric=metric, standardise=standardise)


def cluster_star(star: str | Path, n_clusters: int, out: str | Path | None = None,
                 weights: str | Path | None = None, seed: int = 0, phase_flip: bool = False,
                 contrast: str = "auto", progress: bool = True,
                 in_plane_rotations: int = DEFAULT_IN_PLANE_ROTATIONS) -> dict:
    """Embed the particles of a STAR file and cluster them by pose (k-means++ on features).

    Features are averaged over ``in_plane_rotations`` in-plane rotations, so clusters follow the
    viewing direction, not the in-plane angle.

    Writes the STAR with ``rlnClassNumber`` = cluster + 1 (default ``<stem>_clusters.star``).

    Returns
    -------
    dict
        ``labels`` `(n,)`, ``counts`` per cluster, ``star`` written.
    """
    import torch


    model = load_particle_encoder(weights)
    table = read_particle_table(star)
    if n_clusters > len(table):
        raise InputError(f"{n_clusters} clusters for {len(table)} particles", field="n_clusters",
                         expected=f"at most {len(table)}")
    feats = torch.zeros(len(table), model.embed_dim)
    for b, _ in iter_oriented_batches(table, contrast, 512, model.img_size, phase_flip):
        feats[torch.as_tensor(b.rows)] = embed_images(model, b.images, progress=False,
                                                      in_plane_rotations=in_plane_rotations)
    labels, _ = kmeans_pp(feats.numpy(), n_clusters, seed=seed)
    df = table.particles.copy()
    df[CLUSTER_COLUMN] = labels + 1
    table.particles = df
    star = Path(star)
    out_path = Path(out) if out is not None else star.with_name(f"{star.stem}_clusters.star")
    write_particles(out_path, table)
    return {"labels": labels, "counts": np.bincount(labels, minlength=n_clusters).tolist(),
            "star": out_path}
