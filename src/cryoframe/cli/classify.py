"""``cryoframe classify``: classify subtomograms from a labelled subset (frozen-encoder heads)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._atomic import atomic_path, atomic_savefig
from cryoframe._errors import InputError
from cryoframe._record import write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.io.star import write_particles
from cryoframe.subtomograms.reading import features as embed
from cryoframe.subtomograms.reading import load_subtomograms
from cryoframe.tasks.classify import classify_from_labelled, confusion_matrix


def _confusion_png(path: Path, cm, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k), dpi=120)
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(k), [str(i + 1) for i in range(k)])
    ax.set_yticks(range(k), [str(i + 1) for i in range(k)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, format="png")
    plt.close(fig)


def classify(
    star: Path = typer.Argument(..., help="RELION STAR naming one MRC per subtomogram."),
    out: Path = typer.Option(..., "--out", help="Output STAR (rlnClassNumber for all rows)."),
    label_column: str = typer.Option(
        "rlnClassNumber", "--label-column",
        help="Column with the known classes (≥ 1); rows with 0 or no value are unlabelled."),
    protocol: str = typer.Option("mlp", "--protocol", help="mlp, linear or knn."),
    features: str = typer.Option("encoder", "--features",
                                 help="encoder (pretrained) or invariant (handcrafted)."),
    weights: Path = opt.weights(),
    epochs: int = typer.Option(40, "--epochs", help="MLP head epochs."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds (confusion matrix)."),
    seed: int = opt.seed(),
    pixel_size_angstrom: float = opt.pixel_size(),
) -> None:
    """Train a head on the labelled rows, predict every row.

    Writes OUT (rlnClassNumber = predicted class, rlnMaxValueProbDistribution = its
    probability; labelled rows keep their label in cryoframe's prediction columns only),
    OUT.probabilities.csv (one column per class) and OUT.confusion.png from k-fold
    cross-validation on the labelled rows.
    """
    import dataclasses

    import numpy as np
    import pandas as pd


    console = Console()
    table, vols, px = load_subtomograms(star, pixel_size_angstrom)
    df = table.particles
    if label_column not in df.columns:
        raise InputError("no label column", file=star, field=label_column,
                         expected="class numbers >= 1 for the labelled subset")
    raw = pd.to_numeric(df[label_column], errors="coerce").fillna(0).to_numpy()
    labelled = raw >= 1
    classes = np.unique(raw[labelled]).astype(int)
    if len(classes) < 2 or labelled.sum() < 2 * folds:
        raise InputError(f"{int(labelled.sum())} labelled rows in {len(classes)} classes",
                         file=star, field=label_column,
                         expected=f"at least 2 classes and {2 * folds} labelled rows")
    y = np.searchsorted(classes, raw[labelled].astype(int))
    emb, note = embed(vols, weights, features, px, log=console.print, file=star)
    k = len(classes)

    res = classify_from_labelled(emb, labelled, y, k, protocol, folds=folds, seed=seed,
                                 epochs=epochs)
    prob, cv_pred, acc, n_folds, estimate = (res.probabilities, res.cv_prediction,
                                             res.cv_accuracy_percent, res.n_folds, res.estimate)
    pred = classes[prob.argmax(1)]
    out_df = df.copy()
    out_df["rlnClassNumber"] = pred.astype(int)
    out_df["rlnMaxValueProbDistribution"] = prob.max(1)
    write_particles(out, dataclasses.replace(table, particles=out_df))
    prob_path = out.with_suffix(".probabilities.csv")
    with atomic_path(prob_path) as tmp:
        pd.DataFrame(prob, columns=[f"class_{c}" for c in classes]).assign(
            labelled=labelled).to_csv(tmp, index=False)
    cm = confusion_matrix(y, cv_pred, k)
    _confusion_png(out.with_suffix(".confusion.png"), cm,
                   f"{protocol} on {features}: {n_folds}-fold CV accuracy {acc:.1f} %")
    write_timestamped_record(out.parent, "classify", {"star": star, "protocol": protocol,
                                        "features": note, "classes": classes.tolist(),
                                        "n_labelled": int(labelled.sum()),
                                        "cv_accuracy_percent": acc, "seed": seed,
                                        "accuracy_estimate": None if estimate is None
                                        else dataclasses.asdict(estimate)})
    console.print(f"{int(labelled.sum())} labelled / {len(df)} subtomograms, {k} classes "
                  f"({protocol}, {note}); wrote {out}")
    if estimate is not None:
        console.print(f"{n_folds}-fold {estimate.describe()}")


def register(app: typer.Typer) -> None:
    """Add the ``classify`` command."""
    app.command("classify", epilog=opt.example(
        "cryoframe classify subtomos.star --out classified.star --protocol mlp"))(classify)
