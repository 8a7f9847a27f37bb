"""Shared plumbing of the subtomogram commands (classify, cluster, align, average).

Input: a RELION particle STAR whose ``rlnImageName`` rows name one MRC subtomogram each
(paths relative to the STAR file's folder, or to the working directory as RELION writes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from cryoframe._errors import InputError


def resolve(star: Path, name: str) -> Path:
    """Path of a file named in ``star``: relative to the STAR folder, else to the CWD."""
    p = Path(name.split("@")[-1])
    if p.is_absolute():
        return p
    for base in (star.parent, Path.cwd()):
        if (base / p).exists():
            return base / p
    raise InputError("subtomogram file not found", file=star.parent / p, field="rlnImageName",
                     expected="a path relative to the STAR file or the working directory")


def load_subtomograms(star: Path, pixel_size_angstrom: float | None = None):
    """Read the particle table and its subtomograms.

    Returns
    -------
    table : ParticleTable
    volumes : Tensor
        `(N, n, n, n)` float32.
    pixel_size_angstrom : float
        From ``--pixel-size``, else the table (``rlnImagePixelSize``), else the MRC header.
    """
    from cryoframe.io.mrc import read_mrc
    from cryoframe.io.star import read_particles, require_columns

    table = read_particles(star)
    df = table.particles
    require_columns(df, ["rlnImageName"], file=star, what="subtomogram particle table")
    vols, px_hdr = [], None
    for name in df["rlnImageName"].astype(str):
        m = read_mrc(resolve(star, name))
        v = np.asarray(m.data, dtype=np.float32)
        if v.ndim != 3 or len(set(v.shape)) != 1:
            raise InputError(f"subtomogram of shape {v.shape}", file=name, field="data",
                             expected="a cubic 3D volume")
        if vols and v.shape != vols[0].shape:
            raise InputError(f"box {v.shape} differs from {vols[0].shape}", file=name,
                             field="data", expected="all subtomograms of one box size")
        vols.append(v)
        px_hdr = px_hdr or m.voxel_size_angstrom
    if not vols:
        raise InputError("no particles in the table", file=star, field="data_particles")
    px = pixel_size_angstrom
    if px is None:
        for col in ("rlnImagePixelSize", "rlnTomoSubtomogramPixelSize"):
            if col in df.columns:
                px = float(df[col].iloc[0])
                break
            if table.optics is not None and col in table.optics.columns:
                px = float(table.optics[col].iloc[0])
                break
    px = px or px_hdr
    if not px or px <= 0:
        raise InputError("unknown pixel size", file=star, field="rlnImagePixelSize",
                         expected="a pixel size in the table, the MRC header or --pixel-size")
    return table, torch.as_tensor(np.stack(vols)), float(px)


def features(volumes: torch.Tensor, weights: Path | None, kind: str) -> tuple[np.ndarray, str]:
    """Embeddings `(N, d)` of subtomograms: the pretrained encoder or invariant features."""
    if kind == "invariant":
        from cryoframe.baselines.invariant_features import invariant_features

        return invariant_features(volumes).numpy(), "rotation-invariant handcrafted features"
    if kind != "encoder":
        raise InputError(f"unknown features '{kind}'", field="--features",
                         expected="'encoder' or 'invariant'")
    encoder = encoder_from(weights)
    from cryoframe.train.loop import embed_for_inference

    size = encoder.volume_size
    x = volumes
    if x.shape[-1] != size:
        from cryoframe.fourier.filters import fourier_crop, fourier_pad

        x = fourier_crop(x, size) if x.shape[-1] > size else fourier_pad(x, size)
    return embed_for_inference(encoder, x).numpy(), f"pair encoder ({weights or 'shipped'})"


def encoder_from(weights: Path | None):
    """Pair encoder from ``--weights`` or the installation's pretrained weights."""
    if weights is not None:
        from cryoframe.tasks.align import load_pair_encoder

        return load_pair_encoder(weights)
    from cryoframe.bench.sub5_data import bench_encoder

    enc, note = bench_encoder()
    if enc is None:
        raise InputError(note, field="--weights",
                         expected="--weights CHECKPOINT, or --features invariant")
    return enc


def wedge(n: int, tilt_min_deg: float, tilt_max_deg: float, no_wedge: bool):
    """Full-spectrum wedge mask (or None)."""
    if no_wedge:
        return None
    from cryoframe.baselines.fft_align import wedge_mask

    return wedge_mask((n, n, n), tilt_min_deg, tilt_max_deg)


def run_record(out_dir: Path, name: str, config: dict) -> None:
    """Write ``<name>_run.json`` (version, argv, resolved options) atomically."""
    from cryoframe import __version__
    from cryoframe._atomic import atomic_write_text

    rec = {"command": name, "version": __version__, "argv": sys.argv, "config": config}
    atomic_write_text(Path(out_dir) / f"{name}_run.json",
                      json.dumps(rec, indent=2, default=str) + "\n")
