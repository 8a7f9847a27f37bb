"""Classification protocols on embedding arrays and k-means clustering."""

from __future__ import annotations

import numpy as np
import pytest

from cryoframe import InputError
from cryoframe.tasks.classify import confusion_matrix, evaluate_protocols, split_1_1_8
from cryoframe.tasks.cluster import cluster_embeddings, embed_2d, plot_clusters


def _blobs(n_per_class: int, n_classes: int, dim: int, sep: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * sep
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dim))
    return x.astype(np.float32), y


def test_split_is_exact_1_1_8_and_disjoint():
    y = np.repeat(np.arange(5), 1000)
    s = split_1_1_8(y, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (500, 500, 4000)
    for c in range(5):
        assert (y[s.train] == c).sum() == 100 and (y[s.val] == c).sum() == 100
    allidx = np.concatenate([s.train, s.val, s.test])
    assert len(np.unique(allidx)) == len(y)
    assert not np.array_equal(split_1_1_8(y, seed=4).train, s.train)


def test_split_rejects_tiny_classes():
    with pytest.raises(InputError):
        split_1_1_8(np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]))
    s = split_1_1_8(np.array([0] * 5 + [1] * 5))
    assert len(s.train) == 2 and len(s.val) == 2 and len(s.test) == 6


def test_protocols_beat_chance_on_separable_embeddings():
    xc, yc = _blobs(60, 5, 16, 1.5, seed=0)
    xt, yt = _blobs(100, 5, 16, 1.5, seed=0)
    xt = xt + np.random.default_rng(1).normal(size=xt.shape).astype(np.float32) * 0.5
    split = split_1_1_8(yt, seed=0)
    acc = evaluate_protocols(xc, yc, xt, yt, split, epochs=10, seed=0)
    assert set(acc) == {"knn", "linear", "mlp"}
    for name, a in acc.items():
        assert a > 60.0, (name, a)  # chance is 20 %
    # unstructured embeddings stay near chance
    rng = np.random.default_rng(2)
    acc0 = evaluate_protocols(rng.normal(size=xc.shape), yc, rng.normal(size=xt.shape), yt,
                              split, epochs=5, seed=0)
    assert acc0["linear"] < 40.0


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_kmeans_recovers_blobs_and_plot(tmp_path):
    from sklearn.metrics import adjusted_rand_score

    x, y = _blobs(40, 4, 10, 4.0, seed=5)
    res = cluster_embeddings(x, 4, seed=0)
    assert adjusted_rand_score(y, res.labels) > 0.9
    assert res.distances.shape == (160, 4)
    xy = embed_2d(x, "pca")
    assert xy.shape == (160, 2)
    path = plot_clusters(xy, res.labels, tmp_path / "c.png", true_labels=y)
    assert path.stat().st_size > 1000
    with pytest.raises(InputError):
        cluster_embeddings(x, 500)
