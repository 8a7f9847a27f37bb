"""SUB5: the five-class subtomogram data shared by the sub5-* suites (BENCHMARKS.md).

Classes {7P6Z, 1WCM, 3CF3, 1QVR, 1BXN}; 32³ boxes at 10 Å/voxel made by CryoEngine's full
tilt-series path (:func:`cryoframe.simulate.engine.simulate_subtomograms`): Poisson-disk scenes
with uniform random SO(3) poses, tilt series −60…+60° in 2° steps with a per-tilt CTF (300 kV,
defocus drawn per tilt from 3–6 µm underfocus, phase-flipped before reconstruction), tilt drift
and its alignment, weighted back-projection, extraction with a sub-voxel picking error (≤ 1 voxel
per axis). A unit-variance noise tilt series is reconstructed with the same geometry, so every
box has a signal part ``S`` and a noise part ``N``; the subtomogram at SNR ``s`` is ``S + αN`` with
``α² = Var(S) / (s · Var(N))`` measured on the box
(:func:`cryoframe.simulate.noise.combine_signal_noise`).

The densities are simulated from the bundled atomic models at 10 Å/voxel with a Gaussian of
σ = 5 Å (``resolution_angstrom = 10``). Rows are split by parity into two disjoint pools: even
rows form the SNR-100 training pool of the classification protocol, odd rows the target pool
(split 1:1:8, aligned, averaged), so no test particle is ever seen in training at another SNR.

The store is cached under ``cache_dir`` and resumed if interrupted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cryoframe.bench.results import progress as say
from cryoframe.io.subtomo_table import subtomo_rotations
from cryoframe.models import pretrained
from cryoframe.simulate.config import (
    DensityConfig,
    SubtomogramDatasetConfig,
    benchmark_tomogram_config,
)
from cryoframe.simulate.engine import build_densities, simulate_subtomograms
from cryoframe.simulate.noise import combine_signal_noise

__all__ = ["SUB5_CLASSES", "SUB5_SNRS", "VOXEL_ANGSTROM", "BOX_PX", "PAPER_NOTE", "Sub5Data",
           "sub5_config", "build_sub5", "load_sub5", "class_maps",
           "bench_single_encoder", "snr_key"]

SUB5_CLASSES: tuple[str, ...] = ("7P6Z", "1WCM", "3CF3", "1QVR", "1BXN")
SUB5_SNRS: tuple[float, ...] = (100.0, 0.1, 0.05, 0.03, 0.01, 0.005)
VOXEL_ANGSTROM = 10.0
BOX_PX = 32
PAPER_NOTE = ("SUB5 stands in for the paper's benchmark (5LQW, 1I6V, 6A5L, 5T2C, 5MPA), which "
              "cannot be had offline; paper figures are context only (paper, on its own data).")


def snr_key(snr: float) -> str:
    """Metric suffix of an SNR as in BENCHMARKS.md, e.g. ``snr0.1``."""
    return f"snr{snr:g}"


def sub5_config(n_per_class: int, seed: int, quick: bool):
    """The :class:`~cryoframe.simulate.config.SubtomogramDatasetConfig` of SUB5.

    ``n_per_class`` counts rows of the store (both pools together); classes are drawn uniformly
    per particle, so class counts are only approximately equal.
    """
    tomo = benchmark_tomogram_config((100, 256, 256) if quick else (160, 400, 400), BOX_PX)
    return SubtomogramDatasetConfig(
        structures=list(SUB5_CLASSES), n_per_class=n_per_class, path="full",
        snrs=list(SUB5_SNRS), seed=seed, unit_size=32 if quick else 64,
        density=DensityConfig(voxel_size_angstrom=VOXEL_ANGSTROM, resolution_angstrom=10.0),
        tomogram=tomo,
    )


def build_sub5(cache_dir: str | Path, n_per_class: int, seed: int, quick: bool,
               progress=None):
    """Simulate (or resume / reuse) the SUB5 store; returns the :class:`SubtomoStore`."""
    cfg = sub5_config(n_per_class, seed, quick)
    path = Path(cache_dir) / f"sub5_{'quick' if quick else 'full'}_n{n_per_class}_seed{seed}.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:

        def progress(done: int, total: int) -> None:
            if done == total or done % 10 == 0:
                say(f"SUB5 store: {done}/{total} units")
    return simulate_subtomograms(cfg, path, progress=progress)


@dataclass
class Sub5Data:
    """All of SUB5 in memory."""

    signal: Tensor            #: `(N, 32, 32, 32)` reconstructed signal part
    noise: Tensor             #: `(N, 32, 32, 32)` reconstructed unit tilt noise
    labels: np.ndarray        #: `(N,)` class index into ``SUB5_CLASSES``
    rotations: Tensor         #: `(N, 3, 3)` true poses
    offsets_px: Tensor        #: `(N, 3)` true sub-voxel centre offsets (zyx)
    pool: np.ndarray          #: `(N,)` 0 = SNR-100 training pool, 1 = target pool

    def at_snr(self, snr: float, index=None) -> Tensor:
        """Subtomograms ``S + αN`` at ``snr`` (measured on each box) for rows ``index``."""
        idx = slice(None) if index is None else torch.as_tensor(np.asarray(index))
        return combine_signal_noise(self.signal[idx], self.noise[idx], snr)


def load_sub5(store) -> Sub5Data:
    """Read a SUB5 store into memory."""
    table = store.read_table()
    n = len(table)
    sig = torch.from_numpy(np.array(store.group["volumes"][:n], dtype=np.float32))
    noi = torch.from_numpy(np.array(store.group["noise"][:n], dtype=np.float32))
    rot = subtomo_rotations(table).to(torch.float32)
    off = torch.tensor(table[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy(np.float32))
    labels = table["class_id"].to_numpy().astype(int)
    pool = (table["index"].to_numpy() % 2).astype(int)
    return Sub5Data(sig, noi, labels, rot, off, pool)


def class_maps(box_px: int = BOX_PX) -> Tensor:
    """`(5, box, box, box)` clean class densities centred at voxel ``box // 2`` (templates, GT)."""
    from cryoframe.simulate.config import DensityConfig

    dens = build_densities(SUB5_CLASSES, DensityConfig(voxel_size_angstrom=VOXEL_ANGSTROM,
                                                        resolution_angstrom=10.0))
    out = torch.zeros(len(dens), box_px, box_px, box_px)
    for k, d in enumerate(dens):
        v = torch.as_tensor(np.asarray(d.data), dtype=torch.float32)
        s = v.shape[0]
        if s > box_px:
            c = s // 2 - box_px // 2
            v = v[c:c + box_px, c:c + box_px, c:c + box_px]
            s = box_px
        a = box_px // 2 - s // 2
        out[k, a:a + s, a:a + s, a:a + s] = v
    return out


def bench_single_encoder():
    """The single-subtomogram encoder for the frozen-feature methods, or ``(None, reason)``.

    ``$CRYOFRAME_SUBTOMO_ENCODER`` (an encoder file, to benchmark a checkpoint) or the shipped
    encoder (:func:`cryoframe.models.pretrained.load_encoder`).
    """
    path = os.environ.get("CRYOFRAME_SUBTOMO_ENCODER")
    if path:
        enc, meta = pretrained.load_encoder_file(path)
        return enc, f"checkpoint {path} ({meta})"
    if not pretrained.shipped_encoder_path().exists():
        return None, "no shipped subtomogram encoder in this installation"
    enc, meta = pretrained.load_encoder()
    return enc, f"shipped encoder {pretrained.SHIPPED_ENCODER} ({meta})"
