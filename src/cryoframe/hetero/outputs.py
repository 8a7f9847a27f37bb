"""Result files of a hetero run: multi-model PDB, latent-space plot, RMSD histogram, STAR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_path, atomic_savefig
from cryoframe.io.star import particles_with_poses, write_particles

__all__ = ["write_ca_models_pdb", "latent_pca", "plot_latents", "plot_rmsd_histogram",
           "pick_models_along_pc1", "write_results_star"]


def write_ca_models_pdb(path: str | Path, models_zyx_angstrom, residue_numbers, residue_names,
                        chain: str = "A") -> Path:
    """Write C-alpha models as a multi-model PDB (one MODEL per conformation) with gemmi.

    Parameters
    ----------
    path : str or Path
        Destination ``.pdb``.
    models_zyx_angstrom : array-like
        `(k, n_res, 3)` coordinates in Å, zyx (written as PDB xyz).
    residue_numbers, residue_names : sequences
        `(n_res,)` numbering and three-letter names.
    chain : str
        Chain ID.
    """
    import gemmi

    coords = np.asarray(models_zyx_angstrom, dtype=np.float64)
    st = gemmi.Structure()
    st.name = "cryoframe_hetero"
    for k, model_xyz in enumerate(coords):
        model = gemmi.Model(k + 1)  # gemmi >= 0.7 takes the model number
        ch = gemmi.Chain(chain)
        for (z, y, x), num, name in zip(model_xyz, residue_numbers, residue_names):
            res = gemmi.Residue()
            res.name = str(name)
            res.seqid = gemmi.SeqId(int(num), " ")
            res.het_flag = "A"
            atom = gemmi.Atom()
            atom.name, atom.element = "CA", gemmi.Element("C")
            atom.pos = gemmi.Position(float(x), float(y), float(z))
            atom.occ, atom.b_iso = 1.0, 0.0
            res.add_atom(atom)
            ch.add_residue(res)
        model.add_chain(ch)
        st.add_model(model)
    st.setup_entities()
    with atomic_path(path, suffix=".pdb") as tmp:
        st.write_pdb(str(tmp))
    return Path(path)


def latent_pca(latents: torch.Tensor, k: int = 2) -> np.ndarray:
    """`(m, d)` → `(m, k)` projections on the first ``k`` principal axes."""
    z = latents.detach().to(torch.float64)
    z = z - z.mean(0)
    _, _, v = torch.linalg.svd(z, full_matrices=False)
    return (z @ v[:k].T).numpy()


def pick_models_along_pc1(latents: torch.Tensor, n_models: int) -> np.ndarray:
    """Indices of images at evenly spaced quantiles of latent PC1 (a path through latent space)."""
    pc1 = latent_pca(latents, 1)[:, 0]
    order = np.argsort(pc1)
    pos = np.linspace(0, len(order) - 1, min(n_models, len(order))).round().astype(int)
    return order[pos]


def plot_latents(path: str | Path, latents: torch.Tensor, color=None,
                 color_label: str = "") -> Path:
    """Scatter of latent PC1/PC2, coloured by ``color`` (e.g. true conformation index)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pcs = latent_pca(latents, 2)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    sc = ax.scatter(pcs[:, 0], pcs[:, 1], c=color, s=6, cmap="viridis")
    if color is not None:
        fig.colorbar(sc, ax=ax, label=color_label)
    ax.set_xlabel("latent PC1")
    ax.set_ylabel("latent PC2")
    ax.set_title(f"latent space ({latents.shape[0]} images, d = {latents.shape[1]})")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def plot_rmsd_histogram(path: str | Path, rmsd_angstrom: dict[str, np.ndarray]) -> Path:
    """Histograms of per-image C-alpha RMSD (Å) for several labelled sets (e.g. template, final)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    hi = max(float(np.max(v)) for v in rmsd_angstrom.values())
    bins = np.linspace(0, hi * 1.05 + 1e-6, 40)
    for label, values in rmsd_angstrom.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{label} (mean {np.mean(values):.2f} Å)")
    ax.set_xlabel("C-alpha RMSD to ground truth (Å)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def write_results_star(path: str | Path, table, latents: torch.Tensor,
                       rotations: torch.Tensor | None = None, rmsd_angstrom=None) -> Path:
    """Per-image STAR: the rows of ``table`` (input ParticleTable) plus latents, poses, RMSD.

    Columns added: ``rlnCryoframeLatent1..d``, ``rlnCryoframeRmsdAngst`` and, when ``rotations``
    is given (estimated poses), ``rlnAngleRot/Tilt/Psi`` replaced by them.
    """
    import dataclasses


    df = table.particles.copy()
    z = latents.detach().numpy()
    for j in range(z.shape[1]):
        df[f"rlnCryoframeLatent{j + 1}"] = z[:, j].astype(np.float64)
    if rotations is not None:
        df = particles_with_poses(df, rotations.to(torch.float64), np.zeros((len(df), 3)))
    if rmsd_angstrom is not None:
        df["rlnCryoframeRmsdAngst"] = np.asarray(rmsd_angstrom, dtype=np.float64)
    return write_particles(path, dataclasses.replace(table, particles=df))
