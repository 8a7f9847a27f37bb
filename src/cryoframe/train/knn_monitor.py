"""k-NN monitor: accuracy of frozen embeddings on a held-out slice during pretraining.

The held-out volumes (rows excluded from training) are embedded with the current encoder in
evaluation mode; the even positions serve as the reference set and the odd ones are classified
by majority vote of their ``k`` nearest references (cosine distance, scikit-learn).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor, nn

from cryoframe.train.augment3d import standardize

__all__ = ["embed_volumes", "knn_accuracy", "KNNMonitor"]


@torch.no_grad()
def embed_volumes(encoder: nn.Module, volumes: Tensor, batch_size: int = 64) -> np.ndarray:
    """`(N, L, L, L)` raw volumes → `(N, F)` embeddings (each volume standardised first).

    Pair encoders embed a volume as the pair ``(x, x)``; single-volume encoders use their pooled
    features.
    """
    was_training = encoder.training
    encoder.eval()
    out = []
    try:
        for s in range(0, volumes.shape[0], batch_size):
            x = standardize(torch.as_tensor(volumes[s:s + batch_size], dtype=torch.float32))
            x = x[:, None]
            if hasattr(encoder, "embed_single"):
                out.append(encoder.embed_single(x))
            else:
                out.append(encoder.forward_head(encoder.forward_features(x), pre_logits=True))
    finally:
        encoder.train(was_training)
    return torch.cat(out).float().numpy()


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, k: int = 5, metric: str = "cosine",
                 standardise: bool = False) -> float:
    """Percent of ``test`` rows whose k-NN vote over ``train`` gives the right label.

    The one k-NN accuracy of the package (3D monitor and probes, 2D particles-knn). ``metric``:
    ``"cosine"`` (learned features) or ``"euclidean"``; ``standardise`` z-scores each feature with
    the training rows' statistics first (hand-made features of different units).
    """
    if standardise:
        mu, sd = train_x.mean(0), train_x.std(0) + 1e-12
        train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric=metric,
                               algorithm="brute")
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean() * 100.0)


class KNNMonitor:
    """Held-out k-NN accuracy.

    Parameters
    ----------
    volumes : Tensor
        `(N, L, L, L)` held-out (noisy) volumes.
    labels : array-like
        `(N,)` class labels.
    k : int
        Neighbours.
    """

    def __init__(self, volumes: Tensor, labels, k: int = 5) -> None:
        self.volumes = torch.as_tensor(volumes, dtype=torch.float32)
        self.labels = np.asarray(labels)
        self.k = k

    def __call__(self, encoder: nn.Module) -> float:
        """k-NN accuracy (percent) of ``encoder``'s embeddings, odd rows against even rows."""
        emb = embed_volumes(encoder, self.volumes)
        return knn_accuracy(emb[0::2], self.labels[0::2], emb[1::2], self.labels[1::2], self.k)
