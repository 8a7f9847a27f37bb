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
from cryoframe._threads import one_thread

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
    "AccuracyEstimate",
    "honest_accuracy",
    "wilson_interval",
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


def fit_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                   batch_size: int, optimizer, scheduler, generator: torch.Generator,
                   transform=None, min_batch: int = 1, validate=None) -> nn.Module:
    """Cross-entropy training of a classifier over shuffled mini-batches; the one loop of the
    MLP head and the 3D CNN baseline.

    Each epoch draws a permutation from ``generator``; batches smaller than ``min_batch`` are
    skipped; ``transform(batch, generator)`` augments a batch. With ``validate(model) → accuracy``
    the weights of the best epoch are kept (else the last). Returns the model in eval mode.
    """
    best_acc, best_state = -1.0, None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < min_batch:
                continue
            xb = x[idx] if transform is None else transform(x[idx], generator)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        if validate is not None:
            acc = validate(model)
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


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
    validate = None if val_emb is None else (
        lambda m: float((predict_mlp_head(m, val_emb).argmax(1) == np.asarray(val_y)).mean()))
    with one_thread():  # batches of 16: a second thread only adds waiting (cryoframe._threads)
        return fit_classifier(head, xt, yt, epochs=epochs, batch_size=batch_size, optimizer=opt,
                              scheduler=sched, generator=gen, validate=validate)


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


@dataclass(frozen=True)
class AccuracyEstimate:
    """Cross-validated accuracy and what it says about the unlabelled rows.

    Attributes
    ----------
    cv_percent : float
        Plain k-fold accuracy on the labelled rows.
    cv_ci95 : tuple of float
        Wilson 95 % interval of ``cv_percent``.
    chance_percent : float
        Accuracy of always predicting the most frequent labelled class.
    shift_auc : float or None
        Cross-validated ROC AUC of a labelled-vs-unlabelled classifier on the features
        (0.5: the labelled rows look like the others; ``None``: no unlabelled rows).
    unlabelled_percent : float or None
        Importance-weighted CV accuracy: each labelled row weighted by the odds
        ``p(unlabelled | x) / p(labelled | x)`` of that classifier (clipped to [0.05, 20]), an
        estimate of the accuracy on the unlabelled rows under covariate shift.
    unlabelled_ci95 : tuple of float or None
        Wilson interval of ``unlabelled_percent`` at the weights' effective sample size.
    n_effective : float or None
        ``(Σw)² / Σw²``.
    """

    cv_percent: float
    cv_ci95: tuple[float, float]
    chance_percent: float
    shift_auc: float | None
    unlabelled_percent: float | None
    unlabelled_ci95: tuple[float, float] | None
    n_effective: float | None

    def describe(self) -> str:
        """The one-line statement the CLI prints."""
        lo, hi = self.cv_ci95
        text = (f"cross-validated accuracy on the labelled rows {self.cv_percent:.1f} % "
                f"(95 % CI {lo:.1f}–{hi:.1f} %, chance {self.chance_percent:.1f} %)")
        if self.unlabelled_percent is not None:
            ulo, uhi = self.unlabelled_ci95
            text += (f"; estimated accuracy on the unlabelled rows {self.unlabelled_percent:.1f} %"
                     f" (95 % CI {ulo:.1f}–{uhi:.1f} %, importance-weighted; labelled vs "
                     f"unlabelled AUC {self.shift_auc:.2f}")
            text += (", the labelled rows are not representative)" if self.shift_auc > 0.65
                     else ")")
        return text


def wilson_interval(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (percent) of a proportion ``p`` ∈ [0, 1] from ``n`` trials."""
    if n <= 0:
        return (0.0, 100.0)
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def honest_accuracy(correct, emb, labelled, y, *, seed: int = 0,
                    max_dims: int = 32) -> AccuracyEstimate:
    """Turn per-row CV correctness into an honest accuracy statement.

    Parameters
    ----------
    correct : array
        `(L,)` bool: the cross-validated prediction of each labelled row was right.
    emb : array
        `(N, d)` features of all rows.
    labelled : array
        `(N,)` bool mask of the labelled rows (``L`` of them, in order).
    y : array
        `(L,)` labels of the labelled rows.
    seed : int
        Seed of the shift classifier's folds.
    max_dims : int
        Features are reduced to this many principal components for the shift classifier.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    correct = np.asarray(correct, dtype=bool)
    labelled = np.asarray(labelled, dtype=bool)
    emb = np.asarray(emb, dtype=np.float64)
    n_l = int(labelled.sum())
    acc = float(correct.mean())
    chance = 100.0 * float(np.bincount(np.asarray(y)).max()) / max(1, len(y))
    n_u = int((~labelled).sum())
    if n_u < 5 or n_l < 5:
        return AccuracyEstimate(100 * acc, wilson_interval(acc, n_l), chance, None, None, None,
                                None)
    k = int(min(max_dims, emb.shape[1], max(1, len(emb) // 4)))
    clf = make_pipeline(StandardScaler(), PCA(k, random_state=seed),
                        LogisticRegression(C=0.1, max_iter=2000, random_state=seed))
    folds = int(min(5, n_l, n_u))
    p_u = cross_val_predict(clf, emb, (~labelled).astype(int),
                            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                            method="predict_proba")[:, 1]
    auc = float(roc_auc_score((~labelled).astype(int), p_u))
    pl = np.clip(p_u[labelled], 1e-6, 1 - 1e-6)
    w = np.clip(pl / (1 - pl) * (n_l / n_u), 0.05, 20.0)
    est = float((w * correct).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w ** 2).sum())
    return AccuracyEstimate(100 * acc, wilson_interval(acc, n_l), chance, auc, 100 * est,
                            wilson_interval(est, n_eff), n_eff)


PROTOCOLS = ("mlp", "linear", "knn")


def fit_predict_proba(protocol: str, train_emb, train_y, test_emb, n_classes: int, *,
                      seed: int = 0, epochs: int = 40) -> np.ndarray:
    """Fit one head (``mlp``, ``linear`` or ``knn``) and return class probabilities `(n, k)`.

    Classes absent from ``train_y`` get probability 0 (columns follow ``0 … n_classes − 1``).
    """
    if protocol in ("knn", "linear"):
        m = (knn_classifier(train_emb, train_y) if protocol == "knn"
             else linear_probe(train_emb, train_y, seed=seed))
        p = np.zeros((len(test_emb), n_classes))
        p[:, m.classes_] = m.predict_proba(test_emb)
        return p
    if protocol == "mlp":
        head = train_mlp_head(train_emb, train_y, n_classes=n_classes, epochs=epochs, seed=seed)
        return predict_mlp_head(head, test_emb)
    raise InputError(f"unknown protocol '{protocol}'", field="--protocol",
                     expected="mlp, linear or knn")


@dataclass(frozen=True)
class LabelledClassification:
    """Result of :func:`classify_from_labelled`."""

    probabilities: np.ndarray  #: `(n, k)` for every row, from a head fitted on all labelled rows
    cv_prediction: np.ndarray  #: `(n_labelled,)` k-fold prediction of each labelled row
    cv_accuracy_percent: float  #: NaN when a class has fewer than 2 labelled rows
    n_folds: int
    estimate: AccuracyEstimate | None  #: honest accuracy of the unlabelled rows (None: no CV)


def classify_from_labelled(emb, labelled, y, n_classes: int, protocol: str = "mlp", *,
                           folds: int = 5, seed: int = 0, epochs: int = 40,
                           ) -> LabelledClassification:
    """Classify every row from a labelled subset, with k-fold cross-validation on that subset.

    Parameters
    ----------
    emb : array `(n, d)`
        Embeddings of all rows.
    labelled : bool array `(n,)`
        Rows with a known class.
    y : int array `(n_labelled,)`
        Class index (``0 … n_classes − 1``) of the labelled rows.
    n_classes : int
        Number of classes.
    protocol : str
        ``mlp``, ``linear`` or ``knn`` (:func:`fit_predict_proba`).
    folds : int
        Cross-validation folds (at most the size of the smallest class).
    seed, epochs : int
        Seed of the fold split and heads; MLP epochs.
    """
    from sklearn.model_selection import StratifiedKFold

    xl = emb[labelled]
    n_folds = min(folds, int(np.bincount(y).min()))
    cv_pred = np.zeros(len(y), dtype=int)
    if n_folds >= 2:
        for tr, te in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(xl, y):
            cv_pred[te] = fit_predict_proba(protocol, xl[tr], y[tr], xl[te], n_classes,
                                            seed=seed, epochs=epochs).argmax(1)
        acc = 100.0 * float((cv_pred == y).mean())
        estimate = honest_accuracy(cv_pred == y, emb, labelled, y, seed=seed)
    else:
        acc, estimate = float("nan"), None
    prob = fit_predict_proba(protocol, xl, y, emb, n_classes, seed=seed, epochs=epochs)
    return LabelledClassification(prob, cv_pred, acc, n_folds, estimate)
