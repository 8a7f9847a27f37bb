"""Unsupervised subtomogram clustering on embeddings: k-means++ and a 2D map (PCA, or UMAP).

Works on any `(N, d)` embedding array. Each dimension is standardised (so that features of
different units weigh alike) and each row is then L2-normalised (the cosine geometry the
encoders are trained with) before k-means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from cryoframe._atomic import atomic_savefig
from cryoframe._errors import InputError

__all__ = ["ClusterResult", "kmeans_pp", "cluster_embeddings", "embed_2d", "plot_clusters", "umap_available"]


@dataclass
class ClusterResult:
    """Output of :func:`cluster_embeddings`."""

    labels: np.ndarray          #: `(N,)` cluster index per sample
    distances: np.ndarray       #: `(N, k)` distance of each sample to each centre
    centers: np.ndarray         #: `(k, d)` centres in the standardised embedding space
    inertia: float              #: k-means objective


def _fit_kmeans(x: np.ndarray, n_clusters: int, seed: int, n_init: int) -> KMeans:
    """The one k-means++ fit of the package (3D clustering, particle pose clusters, wizard)."""
    if not 1 <= n_clusters <= len(x):
        raise InputError(f"{n_clusters} clusters for {len(x)} samples", field="n_clusters",
                         expected=f"1 <= k <= {len(x)}")
    return KMeans(n_clusters=n_clusters, init="k-means++", n_init=n_init,
                  random_state=seed).fit(x)


def kmeans_pp(features, n_clusters: int, seed: int = 0, n_init: int = 10,
              normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """k-means with k-means++ seeding on (L2-normalised) features, without standardisation.

    Returns
    -------
    labels : numpy.ndarray
        `(n,)` cluster index in [0, k).
    centres : numpy.ndarray
        `(k, d)` centres.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        raise InputError(f"features of shape {x.shape}", field="features",
                         expected="(n, d) finite values with n >= 2")
    if normalise:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = _fit_kmeans(x, n_clusters, seed, n_init)
    return km.labels_.astype(np.int64), km.cluster_centers_


def _prepare(emb) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"embeddings of shape {x.shape}", field="embeddings",
                         expected="(N, d) with N >= 2")
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cluster_embeddings(emb, n_clusters: int, seed: int = 0, n_init: int = 10) -> ClusterResult:
    """k-means++ clustering of `(N, d)` embeddings.

    Parameters
    ----------
    emb : array
        `(N, d)` embeddings.
    n_clusters : int
        Number of clusters ``k`` (``2 <= k <= N``).
    seed : int
        Seed of the k-means++ initialisation.
    n_init : int
        Number of restarts; the best objective is kept.

    Returns
    -------
    ClusterResult
    """
    x = _prepare(emb)
    km = _fit_kmeans(x, n_clusters, seed, n_init)
    return ClusterResult(km.labels_.astype(int), km.transform(x), km.cluster_centers_,
                         float(km.inertia_))


def umap_available() -> bool:
    """Whether the optional ``umap-learn`` package is installed."""
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def embed_2d(emb, method: str = "pca", seed: int = 0) -> np.ndarray:
    """`(N, d)` embeddings → `(N, 2)` coordinates by ``"pca"`` or ``"umap"`` (needs umap-learn)."""
    x = _prepare(emb)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "umap":
        if not umap_available():
            raise InputError("umap-learn is not installed", field="method",
                             expected="'pca', or install umap-learn for 'umap'")
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    raise InputError(f"unknown 2D embedding '{method}'", field="method", expected="'pca' or 'umap'")


def plot_clusters(coords_2d, labels, path, title: str = "", true_labels=None,
                  class_names=None) -> Path:
    """Scatter plot of 2D coordinates, one categorical colour per cluster; PNG.

    With ``true_labels`` the marker shows the true class, named by ``class_names`` (index →
    name) where given; the legend lists the clusters (colours) and the classes (markers).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = np.asarray(coords_2d)
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(5.6, 4.5), dpi=120)
    markers = "os^vD<>ph*"
    colours = plt.get_cmap("tab10").colors
    true = np.zeros(len(labels), int) if true_labels is None else np.asarray(true_labels)
    classes = np.unique(true)
    for j, t in enumerate(classes):
        for c in np.unique(labels):
            sel = (true == t) & (labels == c)
            ax.scatter(xy[sel, 0], xy[sel, 1], color=colours[int(c) % len(colours)], s=8,
                       marker=markers[j % len(markers)])
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours[int(c) % len(colours)],
                          label=f"cluster {int(c) + 1}") for c in np.unique(labels)]
    if true_labels is not None:
        names = [str(class_names[int(t)]) if class_names is not None else f"class {t}"
                 for t in classes]
        handles += [plt.Line2D([], [], ls="", marker=markers[j % len(markers)], color="k",
                               label=n) for j, n in enumerate(names)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title or f"{labels.max() + 1} clusters")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    path = Path(path)
    atomic_savefig(fig, path, format="png")
    plt.close(fig)
    return path
