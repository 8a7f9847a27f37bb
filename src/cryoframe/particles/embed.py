"""Batched feature extraction with a particle encoder.

Weights (shipped ``cryoframe/weights/particle_vit_cpu.pt`` or a ``cryoframe particles pretrain``
checkpoint) are read by :func:`cryoframe.models.pretrained.load_particle_encoder`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cryoframe._atomic import atomic_path, atomic_write_text
from cryoframe._errors import InputError
from cryoframe.geometry.transforms import rotate_images
from cryoframe.models.pretrained import SHIPPED_PARTICLE, load_particle_encoder, shipped_path
from cryoframe.particles.stack import iter_oriented_batches, read_particle_table

__all__ = ["embed_images", "embed_star", "DEFAULT_IN_PLANE_ROTATIONS"]

#: In-plane rotations averaged by the user-facing feature commands (``embed``, ``cluster``) and
#: the particles-knn benchmark: 45° steps. Viewing-direction classes ignore the in-plane angle, and
#: averaging over the rotation group also averages the noise of the eight passes.
DEFAULT_IN_PLANE_ROTATIONS = 8


@torch.inference_mode()
def embed_images(model: nn.Module, images: torch.Tensor, batch_size: int = 512,
                 progress: bool = False, in_plane_rotations: int = 1) -> torch.Tensor:
    """Frozen features of prepared images, optionally averaged over in-plane rotations.

    With ``in_plane_rotations = n > 1`` each image is rotated by ``k · 360°/n`` (k = 0 … n−1)
    about the box centre ``(s // 2, s // 2)`` (bilinear, outside reads 0 = the normalised
    background mean) and the n class-token features are averaged: the result is invariant to
    in-plane rotations by multiples of ``360°/n`` (exactly for 90° multiples when n is a multiple
    of 4 and the image border is background) and costs n forward passes.

    Parameters
    ----------
    model : ViT2d
        Encoder.
    images : Tensor
        `(n, s, s)` prepared images (see :func:`cryoframe.particles.stack.prepare_images`).
    batch_size : int
        Images per forward pass.
    progress : bool
        Show a rich progress bar.
    in_plane_rotations : int
        Number n of equally spaced in-plane rotations to average over (1: none).

    Returns
    -------
    Tensor
        `(n, d)` float32 class-token features.
    """
    import math


    if int(in_plane_rotations) < 1:
        raise InputError(f"in_plane_rotations = {in_plane_rotations}", field="in_plane_rotations",
                         expected="a positive integer (1: no rotation averaging)")
    n_rot = int(in_plane_rotations)
    model.eval()
    out = []
    rng = range(0, images.shape[0], batch_size)
    if progress:
        from rich.progress import track

        rng = track(rng, description="embedding", total=len(rng))
    for i in rng:
        x = images[i:i + batch_size].to(torch.float32)
        acc = model.forward_head(model.forward_features(x[:, None]), pre_logits=True)
        for k in range(1, n_rot):
            xr = rotate_images(x, 2.0 * math.pi * k / n_rot)
            acc = acc + model.forward_head(model.forward_features(xr[:, None]), pre_logits=True)
        out.append(acc / n_rot)
    if not out:
        return torch.empty(0, getattr(model, "embed_dim", 0))
    return torch.cat(out)


def embed_star(star: str | Path, out: str | Path, weights: str | Path | None = None,
               batch_size: int = 512, phase_flip: bool = False, contrast: str = "auto",
               progress: bool = True,
               in_plane_rotations: int = DEFAULT_IN_PLANE_ROTATIONS) -> dict[str, Any]:
    """Features of every particle of a STAR file, written as ``out`` (``.npy``, `(n, d)` in
    STAR order) plus ``<out>.json`` (model, counts, timing). Features are averaged over
    ``in_plane_rotations`` in-plane rotations (see :func:`embed_images`).

    Returns
    -------
    dict
        ``n``, ``dim``, ``seconds``, ``particles_per_s``, ``contrast_sign``.
    """
    import json


    model = load_particle_encoder(weights)
    table = read_particle_table(star)
    t0 = time.perf_counter()
    feats = np.zeros((len(table), model.embed_dim), dtype=np.float32)
    batches: Any = iter_oriented_batches(table, contrast, batch_size, model.img_size, phase_flip)
    if progress:
        from rich.progress import track

        batches = track(batches, description="embedding",
                        total=-(-len(table) // batch_size))
    sign = 1.0
    for b, sign in batches:
        feats[b.rows] = embed_images(model, b.images, batch_size,
                                     in_plane_rotations=in_plane_rotations).numpy()
    dt = time.perf_counter() - t0
    out = Path(out)
    if out.suffix != ".npy":
        out = out.with_suffix(".npy")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, feats)
    info = {"star": str(star), "n": len(table), "dim": int(model.embed_dim),
            "weights": str(weights or shipped_path(SHIPPED_PARTICLE["encoder"])), "contrast_sign": sign,
            "phase_flip": phase_flip, "in_plane_rotations": int(in_plane_rotations),
            "seconds": round(dt, 3),
            "particles_per_s": round(len(table) / max(dt, 1e-9), 1)}
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return {**info, "features": out}
