"""On-disk layout of a hetero dataset and of per-image results.

A dataset folder holds

* ``particles.mrcs`` — `(m, n, n)` contrast images (float32, pixel size in the header);
* ``particles.star`` — RELION 3.1 table (optics + particles): image names, defocus, microscope
  constants and the true poses (``rlnAngleRot/Tilt/Psi``, cryoframe's zyx active convention
  converted by :mod:`cryoframe.geometry.euler`);
* ``imaging.json`` — the :class:`ImagingConfig`, the noise standard deviation and the SNR;
* ``ground_truth.npz`` (simulated data only) — C-alpha trace of every conformation and the
  conformation imaged by each particle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryoframe._atomic import atomic_path, atomic_write_text
from cryoframe._errors import InputError
from cryoframe.hetero.ensemble import Ensemble
from cryoframe.hetero.images import ImagingConfig, ParticleImages
from cryoframe.io.mrc import read_image_stack, write_mrc
from cryoframe.io.star import (
    ParticleTable,
    particles_with_poses,
    poses_from_particles,
    read_particles,
    require_columns,
    write_particles,
)

__all__ = ["HeteroDataset", "save_dataset", "load_dataset", "estimate_noise_std"]


@dataclass
class HeteroDataset:
    """Images plus what training needs; ground truth when the data were simulated."""

    images: torch.Tensor  # (m, n, n)
    defocus_angstrom: torch.Tensor  # (m,)
    rotations: torch.Tensor | None  # (m, 3, 3) poses from the STAR file
    noise_std: float
    imaging: ImagingConfig
    table: object  # cryoframe.io.star.ParticleTable
    conformation: torch.Tensor | None = None  # (m,)
    ground_truth_ca: torch.Tensor | None = None  # (n_conf, n_res, 3)
    snr: float | None = None

    def per_image_truth(self) -> torch.Tensor | None:
        """`(m, n_res, 3)` true C-alpha trace of each image, or None."""
        if self.ground_truth_ca is None or self.conformation is None:
            return None
        return self.ground_truth_ca[self.conformation]


def estimate_noise_std(images: torch.Tensor, radius_fraction: float = 0.45) -> float:
    """Noise std from pixels outside a centred circle of ``radius_fraction · n`` (background)."""
    n = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    mask = (yy**2 + xx**2) > (radius_fraction * n) ** 2
    return float(images[:, mask].std())


def save_dataset(out_dir: str | Path, data: ParticleImages, ensemble: Ensemble | None = None
                 ) -> Path:
    """Write a simulated dataset folder (see module docstring); returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = data.config
    m = len(data)
    write_mrc(out / "particles.mrcs", data.images.numpy().astype(np.float32),
              cfg.pixel_size_angstrom, image_stack=True)
    optics_cols = {
        "rlnOpticsGroupName": "opticsGroup1", "rlnImagePixelSize": cfg.pixel_size_angstrom,
        "rlnImageSize": cfg.box_px, "rlnImageDimensionality": 2, "rlnVoltage": cfg.voltage_kv,
        "rlnSphericalAberration": cfg.cs_mm, "rlnAmplitudeContrast": cfg.amplitude_contrast,
    }
    df = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@particles.mrcs" for i in range(m)],
        "rlnOpticsGroup": np.ones(m, dtype=int),
        "rlnDefocusU": data.defocus_angstrom.numpy().astype(np.float64),
        "rlnDefocusV": data.defocus_angstrom.numpy().astype(np.float64),
        "rlnDefocusAngle": np.zeros(m),
        "rlnOriginXAngst": np.zeros(m), "rlnOriginYAngst": np.zeros(m),
    })
    for k, v in optics_cols.items():
        df[k] = v
    df = particles_with_poses(df, data.rotations.to(torch.float64), np.zeros((m, 3)))
    optics = pd.DataFrame([{"rlnOpticsGroup": 1, **optics_cols}])
    table = ParticleTable(particles=df, optics=optics, optics_columns=tuple(optics_cols),
                          optics_block="optics")
    write_particles(out / "particles.star", table)
    meta = {"imaging": cfg.model_dump(), "noise_std": data.noise_std, "snr": data.snr,
            **data.extra}
    atomic_write_text(out / "imaging.json", json.dumps(meta, indent=2) + "\n")
    if ensemble is not None:
        with atomic_path(out / "ground_truth.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, ca_zyx_angstrom=ensemble.ca_zyx_angstrom,
                                    conformation=data.conformation.numpy(),
                                    residue_numbers=ensemble.residue_numbers)
    return out


def load_dataset(folder: str | Path) -> HeteroDataset:
    """Read a dataset folder written by :func:`save_dataset` (or by hand: STAR + MRCS).

    ``imaging.json`` is optional: without it the microscope constants come from the STAR optics
    and the noise std is estimated from the image background.
    """
    folder = Path(folder)
    star = folder / "particles.star"
    if not star.exists():
        raise InputError("no particles.star in the dataset folder", file=folder,
                         expected="a folder written by 'cryoframe hetero simulate'")
    table = read_particles(star)
    df = table.particles
    require_columns(df, ["rlnImageName", "rlnDefocusU", "rlnDefocusV"], file=star,
                    what="hetero particle table")
    if not (folder / "imaging.json").exists():
        require_columns(df, ["rlnImagePixelSize", "rlnVoltage", "rlnSphericalAberration",
                             "rlnAmplitudeContrast"], file=star,
                        what="particle table without imaging.json")
    stacks: dict[str, np.ndarray] = {}
    images = []
    for name in df["rlnImageName"]:
        idx, _, fname = str(name).partition("@")
        if fname not in stacks:
            stacks[fname] = read_image_stack(folder / fname).data
        if not idx.isdigit() or not 1 <= int(idx) <= len(stacks[fname]):
            raise InputError(f"image '{name}' not in its stack of {len(stacks[fname])}",
                             file=star, field="rlnImageName",
                             expected="N@stack.mrcs with 1 <= N <= the number of images")
        images.append(stacks[fname][int(idx) - 1])
    imgs = torch.as_tensor(np.stack(images).astype(np.float32))
    meta_path = folder / "imaging.json"
    snr = None
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        imaging = ImagingConfig(**meta["imaging"])
        noise_std, snr = float(meta["noise_std"]), meta.get("snr")
    else:
        row = df.iloc[0]
        imaging = ImagingConfig(box_px=int(imgs.shape[-1]),
                                pixel_size_angstrom=float(row["rlnImagePixelSize"]),
                                voltage_kv=float(row["rlnVoltage"]),
                                cs_mm=float(row["rlnSphericalAberration"]),
                                amplitude_contrast=float(row["rlnAmplitudeContrast"]))
        noise_std = estimate_noise_std(imgs)
    rotations = None
    if {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} <= set(df.columns):
        rotations = poses_from_particles(table)[0].to(torch.float32)
    defocus = torch.as_tensor(
        0.5 * (df["rlnDefocusU"].to_numpy(np.float64) + df["rlnDefocusV"].to_numpy(np.float64)),
        dtype=torch.float32)
    out = HeteroDataset(images=imgs, defocus_angstrom=defocus, rotations=rotations,
                        noise_std=noise_std, imaging=imaging, table=table, snr=snr)
    gt = folder / "ground_truth.npz"
    if gt.exists():
        with np.load(gt) as z:
            out.ground_truth_ca = torch.as_tensor(z["ca_zyx_angstrom"], dtype=torch.float32)
            out.conformation = torch.as_tensor(z["conformation"], dtype=torch.long)
    return out
