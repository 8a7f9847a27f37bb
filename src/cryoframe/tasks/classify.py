"""Classification protocols on frozen embeddings (000 §3.2, App. E; BENCHMARKS.md sub5-classify).

Everything here works on embedding arrays ``(N, d)``, so any encoder (APT-ViT, invariant
features, a random network) can be evaluated with the same code:

* :func:`split_1_1_8` — the paper's stratified 1:1:8 train/val/test split of the target-SNR data;
* :func:`knn_classifier`, :func:`linear_probe` — scikit-learn k-NN (cosine) and logistic regression;
* :class:`MLPHead` / :func:`train_mlp_head` — the paper's 3-layer MLP head on the frozen encoder,
  trained for 40 epochs on all SNR-100 samples + the 10 % training part of the target SNR; the
  epoch with the best accuracy on the 10 % validation part is kept;
* :func:`evaluate_protocols` — all three on one split, accuracy on the 80 % test part.

Deviation from the paper, stated: its head is trained at learning rate 1e-6 (batch 16); a freshly
initialised head barely moves at that rate in 40 epochs, so the default here is AdamW at 1e-3.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cryoframe._errors import InputError

__all__ = [
    "Split",
    "split_1_1_8",
    "knn_classifier",
    "linear_probe",
    "MLPHead",
    "train_mlp_head",
    "predict_mlp_head",
    "evaluate_protocols",
    "confusion_matrix",
]


@dataclass(frozen=True)
class Split:
    """Indices of the train / validation / test parts of a data set."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_1_1_8(labels, seed: int = 0) -> Split:
    """Stratified 1:1:8 split: per class, 10 % train, 10 % validation, the rest test.

    Parameters
    ----------
    labels : array
        `(N,)` integer class labels.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    Split
        Disjoint index arrays covering ``0..N-1``. Per class with ``m`` members the train and
        validation parts hold ``max(1, round(m / 10))`` each (exact 1:1:8 when ``m`` is a
        multiple of 10).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 3:
            raise InputError(
                f"class {c} has {len(idx)} samples", field="labels",
                expected="at least 3 samples per class for a 1:1:8 split",
            )
        k = max(1, int(round(len(idx) / 10)))
        parts[0].append(idx[:k])
        parts[1].append(idx[k:2 * k])
        parts[2].append(idx[2 * k:])
    return Split(*(np.sort(np.concatenate(p)) for p in parts))


def _check(emb, labels) -> tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(emb, dtype=np.float32)
    labels = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[0] != labels.shape[0]:
        raise InputError(
            f"embeddings {emb.shape} and labels {labels.shape} do not match", field="embeddings",
            expected="(N, d) embeddings with N labels",
        )
    return emb, labels


def knn_classifier(train_emb, train_y, k: int = 5):
    """Fitted k-NN classifier (cosine distance, distance-weighted votes) on `(N, d)` embeddings."""
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _check(train_emb, train_y)
    return KNeighborsClassifier(n_neighbors=min(k, len(y)), metric="cosine",
                                weights="distance").fit(x, y)


def linear_probe(train_emb, train_y, c: float = 1.0, seed: int = 0):
    """Fitted linear probe: standardisation + multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _check(train_emb, train_y)
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=c, max_iter=3000, random_state=seed)).fit(x, y)


class MLPHead(nn.Module):
    """3-layer MLP classification head (the paper's head on the frozen encoder).

    Parameters
    ----------
    dim_in : int
        Embedding dimension.
    n_classes : int
        Number of classes.
    hidden : int
        Width of the two hidden layers.
    dropout : float
        Dropout after each hidden layer.
    """

    def __init__(self, dim_in: int, n_classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.net = nn.Sequential(
            nn.Linear(dim_in, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, dim_in)` embeddings → `(B, n_classes)` logits."""
        return self.net(self.norm(x))


def train_mlp_head(
    train_emb,
    train_y,
    val_emb=None,
    val_y=None,
    *,
    n_classes: int | None = None,
    epochs: int = 40,
    batch_size: int = 16,
    lr: float = 1e-3,
    hidden: int = 256,
    seed: int = 0,
) -> MLPHead:
    """Train :class:`MLPHead` on frozen embeddings; keep the epoch best on the validation part.

    Parameters
    ----------
    train_emb, val_emb : array
        `(N, d)` embeddings (the validation pair is optional).
    train_y, val_y : array
        `(N,)` integer labels.
    n_classes : int, optional
        Defaults to ``max(train_y) + 1``.
    epochs, batch_size, lr, hidden, seed
        40 epochs and batch 16 as in the paper; see the module note on the learning rate.

    Returns
    -------
    MLPHead
        In eval mode.
    """
    x, y = _check(train_emb, train_y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    head = MLPHead(x.shape[1], n_classes, hidden)
    head.register_buffer("in_mean", torch.as_tensor(mean))
    head.register_buffer("in_std", torch.as_tensor(std))
    xt = (torch.as_tensor(x) - head.in_mean) / head.in_std
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, (len(xt) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    best_acc, best_state = -1.0, None
    for _ in range(epochs):
        head.train()
        perm = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), batch_size):
            idx = perm[start:start + batch_size]
            loss = nn.functional.cross_entropy(head.forward(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if val_emb is not None:
            acc = float((predict_mlp_head(head, val_emb).argmax(1) == np.asarray(val_y)).mean())
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(head.state_dict())
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval()


@torch.no_grad()
def predict_mlp_head(head: MLPHead, emb) -> np.ndarray:
    """`(N, d)` embeddings → `(N, n_classes)` class probabilities."""
    head.eval()
    x = (torch.as_tensor(np.asarray(emb, dtype=np.float32)) - head.in_mean) / head.in_std
    return torch.softmax(head(x), dim=1).numpy()


def evaluate_protocols(
    emb_clean,
    y_clean,
    emb_target,
    y_target,
    split: Split,
    *,
    k: int = 5,
    epochs: int = 40,
    seed: int = 0,
) -> dict[str, float]:
    """k-NN, linear probe and MLP head on one split; accuracy (percent) on the test part.

    Parameters
    ----------
    emb_clean, y_clean : array
        `(M, d)` embeddings of all SNR-100 samples and their labels (always in training).
    emb_target, y_target : array
        `(N, d)` embeddings of the target-SNR data and labels; ``split`` indexes them.
    split : Split
        From :func:`split_1_1_8` on ``y_target``.
    k, epochs, seed
        Neighbours of the k-NN, epochs of the MLP head, seed.

    Returns
    -------
    dict
        ``{"knn": %, "linear": %, "mlp": %}``.
    """
    ec, yc = _check(emb_clean, y_clean)
    et, yt = _check(emb_target, y_target)
    train_x = np.concatenate([ec, et[split.train]])
    train_y = np.concatenate([yc, yt[split.train]])
    test_x, test_y = et[split.test], yt[split.test]
    n_classes = int(max(train_y.max(), yt.max())) + 1
    out = {
        "knn": 100.0 * float((knn_classifier(train_x, train_y, k).predict(test_x)
                              == test_y).mean()),
        "linear": 100.0 * float((linear_probe(train_x, train_y, seed=seed).predict(test_x)
                                 == test_y).mean()),
    }
    head = train_mlp_head(train_x, train_y, et[split.val], yt[split.val], n_classes=n_classes,
                          epochs=epochs, seed=seed)
    out["mlp"] = 100.0 * float((predict_mlp_head(head, test_x).argmax(1) == test_y).mean())
    return out


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """`(n_classes, n_classes)` counts; row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as _cm

    return _cm(np.asarray(y_true), np.asarray(y_pred), labels=np.arange(n_classes))
