"""Reading subtomograms for the subtomogram commands (classify, cluster, align, average, embed).

Input: a RELION particle STAR whose ``rlnImageName`` rows name one MRC subtomogram each
(paths relative to the STAR file's folder, or to the working directory as RELION writes them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.baselines.invariant_features import invariant_features
from cryoframe.fourier.contrast import contrast_relation, resolve_contrast
from cryoframe.fourier.resample import plan_resample, resample_volumes
from cryoframe.io.mrc import MrcHeaderWarning, read_mrc, read_mrc_header, read_volume
from cryoframe.io.star import read_particles, require_columns, table_pixel_size
from cryoframe.models.pretrained import (
    load_correlation_head_file,
    load_encoder,
    load_encoder_file,
    load_pair_encoder_file,
    shipped_weights_path,
)
from cryoframe.tasks.fft_align import wedge_mask
from cryoframe.train.loop import embed_for_inference


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


def select_class(table, star: Path, class_number: int | None, column: str = "rlnClassNumber"):
    """Keep only the rows whose ``column`` equals ``class_number`` (``None``: all rows)."""
    import dataclasses

    import pandas as pd

    if class_number is None:
        return table
    df = table.particles
    if column not in df.columns:
        raise InputError("no class column to select from", file=star, field=column,
                         expected=f"a column {column} (e.g. from cryoframe classify)")
    keep = pd.to_numeric(df[column], errors="coerce").to_numpy() == class_number
    if not keep.any():
        found = sorted(set(pd.to_numeric(df[column], errors="coerce").dropna().astype(int)))
        raise InputError(f"no rows of class {class_number}", file=star, field=column,
                         expected=f"one of {found[:20]}")
    return dataclasses.replace(table, particles=df[keep].reset_index(drop=True))


def load_subtomograms(star: Path, pixel_size_angstrom: float | None = None,
                      class_number: int | None = None, class_column: str = "rlnClassNumber"):
    """Read the particle table (optionally one class) and its subtomograms.

    Returns
    -------
    table : ParticleTable
    volumes : Tensor
        `(N, n, n, n)` float32.
    pixel_size_angstrom : float
        From ``--pixel-size``, else the table (``rlnImagePixelSize``, optics), else the MRC
        header. A table and header that disagree by more than 1 % are refused.
    """
    table = select_class(read_particles(star), star, class_number, class_column)
    df = table.particles
    require_columns(df, ["rlnImageName"], file=star, what="subtomogram particle table")
    vols, px_hdr = [], None
    for name in df["rlnImageName"].astype(str):
        path = resolve(star, name)
        m = read_mrc(path)
        v = np.asarray(m.data, dtype=np.float32)
        if v.ndim != 3 or len(set(v.shape)) != 1:
            raise InputError(f"subtomogram of shape {v.shape}", file=path, field="data",
                             expected="a cubic 3D volume")
        if vols and v.shape != vols[0].shape:
            raise InputError(f"box {v.shape} differs from {vols[0].shape}", file=path,
                             field="data", expected="all subtomograms of one box size")
        vols.append(v)
        px_hdr = px_hdr or m.voxel_size_angstrom
    if not vols:
        raise InputError("no particles in the table", file=star, field="data_particles")
    px = pixel_size_angstrom
    if px is None:
        px = table_pixel_size(table)
        if px is not None and px_hdr and abs(px_hdr - 1.0) > 1e-6 and \
                abs(px - px_hdr) > 0.01 * px:
            raise InputError(f"table says {px:g} Å/voxel, MRC header {px_hdr:g} Å", file=star,
                             field="rlnImagePixelSize",
                             expected="the same voxel size in the STAR and the MRC headers "
                             "(or --pixel-size)")
    px = px or px_hdr
    if not px or px <= 0:
        raise InputError("unknown pixel size", file=star, field="rlnImagePixelSize",
                         expected="a pixel size in the table, the MRC header or --pixel-size")
    return table, torch.as_tensor(np.stack(vols)), float(px)


class StarVolumes:
    """The subtomograms of a particle table, read from their MRC files on demand.

    ``get(indices)`` returns ``{"clean": (k, n, n, n) float32}`` like a store source, so
    :class:`cryoframe.tasks.average.VolumeSource` streams a STAR of any length in chunks.
    """

    def __init__(self, star: Path, names: list[str], box: int) -> None:
        self.star, self.names, self.box = star, names, box

    def __len__(self) -> int:
        return len(self.names)

    def get(self, indices) -> dict:
        """``{"clean": (k, n, n, n) float32}`` of the rows ``indices``."""
        vols = []
        for i in np.asarray(indices, dtype=np.int64):
            path = resolve(self.star, self.names[int(i)])
            v = np.asarray(read_mrc(path).data, dtype=np.float32)
            if v.shape != (self.box,) * 3:
                raise InputError(f"box {v.shape}", file=path, field="data",
                                 expected=f"({self.box}, {self.box}, {self.box}) like the others")
            vols.append(v)
        return {"clean": torch.as_tensor(np.stack(vols))}


def open_subtomograms(star: Path, pixel_size_angstrom: float | None = None,
                      class_number: int | None = None, class_column: str = "rlnClassNumber"):
    """Like :func:`load_subtomograms` but lazy: ``(table, StarVolumes, pixel size)``.

    Only the first subtomogram is read here (box and header voxel size); the others are read
    when used.
    """
    from cryoframe.io.mrc import read_mrc
    from cryoframe.io.star import read_particles, require_columns, table_pixel_size

    table = select_class(read_particles(star), star, class_number, class_column)
    df = table.particles
    require_columns(df, ["rlnImageName"], file=star, what="subtomogram particle table")
    names = df["rlnImageName"].astype(str).tolist()
    if not names:
        raise InputError("no particles in the table", file=star, field="data_particles")
    first = resolve(star, names[0])
    m = read_mrc(first, mmap=True)
    if m.data.ndim != 3 or len(set(m.data.shape)) != 1:
        raise InputError(f"subtomogram of shape {m.data.shape}", file=first, field="data",
                         expected="a cubic 3D volume")
    px, px_hdr = pixel_size_angstrom, m.voxel_size_angstrom
    if px is None:
        px = table_pixel_size(table)
        if px is not None and abs(px_hdr - 1.0) > 1e-6 and abs(px - px_hdr) > 0.01 * px:
            raise InputError(f"table says {px:g} Å/voxel, MRC header {px_hdr:g} Å", file=star,
                             field="rlnImagePixelSize",
                             expected="the same voxel size in the STAR and the MRC headers "
                             "(or --pixel-size)")
    px = px or px_hdr
    return table, StarVolumes(star, names, int(m.data.shape[0])), float(px)


#: Voxel size of the data the shipped encoder and ``cryoframe pretrain`` were trained on (the
#: pretraining simulators run at 10 Å/voxel); an encoder file may override it in its metadata.
ENCODER_VOXEL_SIZE_ANGSTROM = 10.0


def to_encoder_sampling(volumes: torch.Tensor, pixel_size_angstrom: float, box: int,
                        encoder_pixel_angstrom: float = ENCODER_VOXEL_SIZE_ANGSTROM,
                        file=None, log=None):
    """Resample `(N, n, n, n)` volumes to the encoder's voxel size and box (or refuse).

    Returns the resampled volumes and the :class:`~cryoframe.fourier.resample.ResamplePlan`.
    """
    plan = plan_resample(volumes.shape[-1], pixel_size_angstrom, encoder_pixel_angstrom, box,
                         file=file)
    if log is not None and not plan.identity:
        log(f"sampling: {plan.describe()} (the encoder was trained at "
            f"{encoder_pixel_angstrom:g} Å/voxel, {box}³)")
    return resample_volumes(volumes, plan), plan


def features(volumes: torch.Tensor, weights: Path | None, kind: str,
             pixel_size_angstrom: float | None = None, log=None, file=None
             ) -> tuple[np.ndarray, str]:
    """Embeddings `(N, d)` of subtomograms: the pretrained encoder or invariant features.

    For the encoder the volumes are first brought to its voxel size and box
    (:func:`to_encoder_sampling`); ``pixel_size_angstrom`` is the data's voxel size.
    """
    if kind == "invariant":

        return invariant_features(volumes).numpy(), "rotation-invariant handcrafted features"
    if kind != "encoder":
        raise InputError(f"unknown features '{kind}'", field="--features",
                         expected="'encoder' or 'invariant'")
    encoder, enc_px = encoder_and_sampling(weights)

    x = volumes
    if pixel_size_angstrom is not None:
        x, _ = to_encoder_sampling(x, pixel_size_angstrom, encoder.volume_size, enc_px,
                                   file=file, log=log)
    elif x.shape[-1] != encoder.volume_size:
        raise InputError(f"box {x.shape[-1]} without a voxel size", field="--pixel-size",
                         expected=f"the data's voxel size to resample to {enc_px:g} Å")
    return embed_for_inference(encoder, x).numpy(), f"encoder ({weights or 'shipped'})"


def encoder_and_sampling(weights: Path | None):
    """``(encoder, voxel size in Å it was trained at)`` from ``--weights`` or the shipped encoder.

    The shipped encoder is the single-subtomogram encoder
    (:func:`cryoframe.models.pretrained.load_encoder`); ``--weights`` may name any encoder file
    cryoframe writes (single or pair encoder).
    """
    enc, meta = load_encoder_file(weights) if weights is not None else load_encoder()
    return enc, float(meta.get("voxel_size_angstrom", ENCODER_VOXEL_SIZE_ANGSTROM))


def pair_encoder_and_sampling(weights: Path | None):
    """``(pair encoder, voxel size in Å)`` for the learned aligner (``--weights`` or shipped)."""
    if weights is None:
        encoder_from(None)  # the clear error when no weights are installed
        weights = shipped_weights_path()
    enc, meta = load_pair_encoder_file(weights)
    return enc, float(meta.get("voxel_size_angstrom", ENCODER_VOXEL_SIZE_ANGSTROM))


def correlation_head_and_sampling(weights: Path | None):
    """``(correlation head, voxel size in Å)`` for the posterior aligner (``--weights`` or
    shipped).
    """
    head, meta = load_correlation_head_file(weights)
    return head, float(meta.get("voxel_size_angstrom", ENCODER_VOXEL_SIZE_ANGSTROM))


def encoder_from(weights: Path | None):
    """Pair encoder from ``--weights`` or the installation's shipped weights."""
    from cryoframe.models.pretrained import load_pair_encoder, shipped_weights_path

    if weights is None and not shipped_weights_path().exists():
        raise InputError("no pretrained subtomogram encoder in this installation",
                         field="--weights", expected="--weights CHECKPOINT, or --features "
                         "invariant")
    return load_pair_encoder(weights)


def wedge(n: int, tilt_min_deg: float, tilt_max_deg: float, no_wedge: bool):
    """Full-spectrum wedge mask (or None)."""
    if no_wedge:
        return None

    return wedge_mask((n, n, n), tilt_min_deg, tilt_max_deg)


def read_reference(path: Path, box: int, pixel_size_angstrom: float, log=None,
                   reference_pixel_size: float | None = None) -> torch.Tensor:
    """Read a reference map and bring it to the data's voxel size and box.

    The reference's voxel size comes from ``reference_pixel_size`` or its MRC header; a header
    voxel size of 0 is taken to equal the data's (said in one line).
    """
    import warnings

    from cryoframe.fourier.resample import plan_resample, resample_volumes

    hdr = read_mrc_header(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MrcHeaderWarning)
        vol = read_volume(path)
    data = np.asarray(vol.data, dtype=np.float32)
    if len(set(data.shape)) != 1:
        raise InputError(f"reference of shape {data.shape}", file=path, field="data",
                         expected="a cubic map")
    ref_px = reference_pixel_size
    if ref_px is None:
        ref_px = vol.voxel_size_angstrom if hdr.voxel_size_zyx_angstrom[2] > 0 else None
        if ref_px is None:
            ref_px = pixel_size_angstrom
            if log is not None:
                log(f"sampling: {path} has voxel size 0 in its header; taken as the data's "
                    f"{pixel_size_angstrom:g} Å")
    plan = plan_resample(data.shape[-1], ref_px, pixel_size_angstrom, box, file=path)
    if log is not None and not plan.identity:
        log(f"sampling: reference {plan.describe()}")
    return resample_volumes(torch.as_tensor(data), plan)


def contrast_signs(data: torch.Tensor, reference: torch.Tensor, invert_reference: bool,
                   invert_data: bool, auto: bool, log, reference_name: str = "reference"):
    """Measure the data/reference contrast relation and return ``(data_sign, ref_sign, line)``."""
    rel = contrast_relation(data, reference)
    d, r, msg = resolve_contrast(rel, invert_reference=invert_reference,
                                 invert_data=invert_data, auto=auto,
                                 reference_name=reference_name)
    log(msg)
    return d, r, msg, rel
