"""``cryoframe cluster``: unsupervised k-means++ classes of subtomograms, with a 2D map."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._record import write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.io.star import write_particles
from cryoframe.subtomograms.reading import features as embed
from cryoframe.subtomograms.reading import load_subtomograms
from cryoframe.tasks.cluster import cluster_embeddings, embed_2d, plot_clusters, umap_available


def cluster(
    star: Path = typer.Argument(..., help="RELION STAR naming one MRC per subtomogram."),
    n_clusters: int = typer.Option(..., "--n-clusters", "-k", help="Number of clusters."),
    out: Path = typer.Option(..., "--out", help="Output STAR (rlnClassNumber = cluster)."),
    features: str = typer.Option("encoder", "--features",
                                 help="encoder (pretrained) or invariant (handcrafted)."),
    weights: Path = opt.weights(),
    plot: str = typer.Option("auto", "--plot", help="pca, umap or auto (umap if installed)."),
    seed: int = opt.seed(),
    pixel_size_angstrom: float = opt.pixel_size(),
) -> None:
    """Cluster subtomogram embeddings with k-means++; writes OUT and OUT.clusters.png."""
    import dataclasses


    console = Console()
    table, vols, px = load_subtomograms(star, pixel_size_angstrom)
    emb, note = embed(vols, weights, features, px, log=console.print, file=star)
    res = cluster_embeddings(emb, n_clusters, seed=seed)
    method = ("umap" if umap_available() else "pca") if plot == "auto" else plot
    xy = embed_2d(emb, method, seed=seed)
    df = table.particles.copy()
    df["rlnClassNumber"] = res.labels + 1
    write_particles(out, dataclasses.replace(table, particles=df))
    png = plot_clusters(xy, res.labels, out.with_suffix(".clusters.png"),
                        title=f"k-means++ ({n_clusters}) on {features}, {method.upper()}")
    write_timestamped_record(out.parent, "cluster", {"star": star, "n_clusters": n_clusters,
                                       "features": note, "plot": method, "seed": seed,
                                       "inertia": res.inertia})
    sizes = ", ".join(str(int((res.labels == c).sum())) for c in range(n_clusters))
    console.print(f"{len(df)} subtomograms → cluster sizes {sizes} ({note}); "
                  f"wrote {out} and {png}")


def register(app: typer.Typer) -> None:
    """Add the ``cluster`` command (subtomograms; 2D particles: ``cryoframe particles cluster``)."""
    app.command("cluster", epilog=opt.example(
        "cryoframe cluster subtomos.star -k 3 --out clusters.star"))(cluster)
