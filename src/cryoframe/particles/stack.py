"""Particle stacks from MRCS + RELION STAR, prepared for the particle encoder.

Reading: ``rlnImageName`` entries ``k@stack.mrcs`` (1-based ``k``) are resolved relative to the
STAR file's folder, then its parent folders (RELION project layout), then the current directory,
and finally as the file name next to the STAR file. Stacks are memory-mapped and read in
batches, so large data sets stream. Optics groups (RELION 3.1+) are merged per particle by
:func:`cryoframe.io.star.read_particles`; RELION 3.0 pixel sizes come from
``rlnDetectorPixelSize · 10⁴ / rlnMagnification``.

Preparation (:func:`prepare_images`), per image:

1. optional phase flip: multiply the spectrum by ``sign(−CTF)`` (the RELION-sign CTF, as the
   images are assumed extracted with inverted contrast, protein white, as RELION and cryoSPARC
   do by default);
2. Fourier crop (or pad) to ``target_size_px`` (64 for the shipped models);
3. normalisation by the mean and σ of the background ring outside radius
   ``bg_radius_fraction · size / 2`` (RELION's default background radius is 0.75 of the half-box);
4. contrast: the shipped models expect protein white (as RELION / cryoSPARC extract with
   "invert contrast"); stacks with dark protein (e.g. EMPIAR-10076) are inverted, detected
   automatically from the mean of the central disc (:func:`contrast_sign`) or set explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.ctf import ctf_2d, phase_flip_2d
from cryoframe.fourier.filters import fourier_crop, fourier_pad
from cryoframe.io.mrc import read_mrc
from cryoframe.io.star import pixel_size_angstrom, read_particles
from cryoframe.simulate.particles2d import background_ring_normalise

__all__ = ["ParticleBatch", "read_particle_table", "iter_particle_batches", "prepare_images",
           "background_ring_normalise", "load_prepared_particles", "central_contrast",
           "contrast_sign", "iter_oriented_batches"]


@dataclass
class ParticleBatch:
    """A batch of prepared images and the rows of the table they come from.

    Attributes
    ----------
    images : Tensor
        `(b, s, s)` float32 prepared images.
    rows : numpy.ndarray
        `(b,)` row indices into the particle table.
    pixel_size_angstrom : numpy.ndarray
        `(b,)` pixel size after resizing.
    """

    images: torch.Tensor
    rows: np.ndarray
    pixel_size_angstrom: np.ndarray


def read_particle_table(star: str | Path):
    """Read a particle STAR file (RELION 3.0 or 3.1–5) and check it names images.

    Returns
    -------
    cryoframe.io.star.ParticleTable
    """
    table = read_particles(star)
    if "rlnImageName" not in table.particles.columns:
        raise InputError("no image column", file=star, field="rlnImageName",
                         expected="rlnImageName entries like 000001@particles.mrcs")
    if len(table) == 0:
        raise InputError("no particles", file=star, field="data_particles",
                         expected="at least one particle")
    return table


def _parse_image_names(names: list[str], star: Path) -> tuple[np.ndarray, list[str]]:
    idx = np.empty(len(names), dtype=np.int64)
    files = []
    for i, name in enumerate(names):
        text = str(name)
        if "@" not in text:
            idx[i], f = 1, text
        else:
            k, f = text.split("@", 1)
            try:
                idx[i] = int(k)
            except ValueError:
                raise InputError(f"bad image name '{text}'", file=star, field="rlnImageName",
                                 expected="k@stack.mrcs with an integer k >= 1") from None
        files.append(f)
    if (idx < 1).any():
        raise InputError("image index < 1", file=star, field="rlnImageName",
                         expected="1-based indices k@stack.mrcs")
    return idx - 1, files


def _resolve(name: str, star: Path) -> Path:
    p = Path(name)
    candidates = [p] if p.is_absolute() else \
        [star.parent / p, *[parent / p for parent in star.resolve().parents[:3]], Path.cwd() / p,
         star.parent / p.name]
    for c in candidates:
        if c.exists():
            return c
    raise InputError("particle stack not found", file=star, field="rlnImageName",
                     expected=f"'{name}' relative to the STAR file or the current directory")


def _read_stack(path: Path) -> np.ndarray:
    """Memory-map a particle stack (``read_mrc``; files without the MRC2014 ``MAP`` stamp, as
    written by older tools, are opened by :mod:`mrcfile` in permissive mode).
    """
    try:
        return read_mrc(path, mmap=True, voxel_size_angstrom=1.0).data
    except InputError:
        import warnings

        import mrcfile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mrc = mrcfile.mmap(path, mode="r", permissive=True)
            except (ValueError, OSError) as exc:
                raise InputError(f"cannot read particle stack ({exc})", file=path,
                                 field="data", expected="an MRC/MRCS image stack") from exc
        if mrc.data is None:
            raise InputError("cannot read particle stack", file=path, field="header",
                             expected="an MRC/MRCS image stack") from None
        return mrc.data


def prepare_images(
    images: np.ndarray | torch.Tensor,
    pixel_size_angstrom: np.ndarray | float,
    target_size_px: int = 64,
    phase_flip: bool = False,
    ctf_params: dict[str, np.ndarray] | None = None,
    bg_radius_fraction: float = 0.75,
) -> tuple[torch.Tensor, np.ndarray]:
    """Phase-flip (optional), Fourier-crop to ``target_size_px`` and normalise a batch.

    Parameters
    ----------
    images : array
        `(b, s, s)` raw particle images.
    pixel_size_angstrom : float or array
        `(b,)` input pixel size in Å.
    target_size_px : int
        Output box.
    phase_flip : bool
        Multiply by ``sign(−CTF)``; needs ``ctf_params`` (defocus_u/v_angstrom, defocus_angle_deg,
        voltage_kv, cs_mm, amplitude_contrast, phase_shift_deg; each `(b,)`).
    bg_radius_fraction : float
        See :func:`background_ring_normalise`.

    Returns
    -------
    images : Tensor
        `(b, target, target)` float32.
    pixel_size_angstrom : numpy.ndarray
        `(b,)` output pixel size.
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not torch.is_tensor(images)
                        else images.to(torch.float32))
    if x.ndim != 3 or x.shape[-1] != x.shape[-2]:
        raise InputError(f"images of shape {tuple(x.shape)}", field="images",
                         expected="(b, s, s) square images")
    b, s = x.shape[0], x.shape[-1]
    pix = np.broadcast_to(np.asarray(pixel_size_angstrom, dtype=np.float64), (b,)).copy()
    if phase_flip:
        if ctf_params is None:
            raise InputError("phase flipping needs CTF parameters", field="phase_flip",
                             expected="rlnDefocusU/V/Angle, rlnVoltage, rlnSphericalAberration, "
                             "rlnAmplitudeContrast in the STAR file")

        out = []
        for g in np.unique(pix):  # ctf_2d takes one pixel size; group by it
            m = pix == g
            p = {k: torch.as_tensor(np.asarray(v)[m]) for k, v in ctf_params.items()}
            ctf = ctf_2d((s, s), float(g), p["defocus_u_angstrom"], p["defocus_v_angstrom"],
                         p["defocus_angle_deg"], voltage_kv=float(p["voltage_kv"][0]),
                         cs_mm=float(p["cs_mm"][0]),
                         amplitude_contrast=float(p["amplitude_contrast"][0]),
                         phase_shift_deg=p["phase_shift_deg"], rfft=True)
            out.append((np.nonzero(m)[0], phase_flip_2d(x[torch.as_tensor(m)], -ctf)))
        flipped = torch.empty_like(x)
        for rows, imgs in out:
            flipped[torch.as_tensor(rows)] = imgs.to(torch.float32)
        x = flipped
    if s > target_size_px:
        x = fourier_crop(x, (target_size_px, target_size_px))
    elif s < target_size_px:
        x = fourier_pad(x, (target_size_px, target_size_px))
    pix = pix * s / target_size_px
    return background_ring_normalise(x.to(torch.float32), bg_radius_fraction), pix


def _ctf_columns(df, rows: np.ndarray, star: Path) -> dict[str, np.ndarray]:
    need = {"rlnDefocusU": "defocus_u_angstrom", "rlnVoltage": "voltage_kv",
            "rlnSphericalAberration": "cs_mm", "rlnAmplitudeContrast": "amplitude_contrast"}
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError("phase flipping needs CTF columns", file=star, field=missing[0],
                         expected=", ".join(need))
    sub = df.iloc[rows]
    out = {v: sub[k].to_numpy(np.float64) for k, v in need.items()}
    out["defocus_v_angstrom"] = sub["rlnDefocusV"].to_numpy(np.float64) \
        if "rlnDefocusV" in sub else out["defocus_u_angstrom"]
    out["defocus_angle_deg"] = sub["rlnDefocusAngle"].to_numpy(np.float64) \
        if "rlnDefocusAngle" in sub else np.zeros(len(rows))
    out["phase_shift_deg"] = sub["rlnPhaseShift"].to_numpy(np.float64) \
        if "rlnPhaseShift" in sub else np.zeros(len(rows))
    return out


def central_contrast(images: torch.Tensor, radius_fraction: float = 0.25) -> float:
    """Mean of normalised images inside the central disc (radius ``radius_fraction · s``).

    Positive for white protein on a background of mean 0, negative for dark protein.
    """
    s = images.shape[-1]
    c = torch.arange(s, dtype=torch.float32) - s // 2
    disc = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2) < radius_fraction * s
    return float(images[..., disc].mean())


def contrast_sign(table, contrast: str = "auto", n_probe: int = 512, target_size_px: int = 64,
                  phase_flip: bool = False, threshold: float = 0.05) -> float:
    """Sign that makes protein white, the convention of the shipped models.

    Parameters
    ----------
    table : ParticleTable
        Particles.
    contrast : {"auto", "white", "dark"}
        ``"white"``: protein already white (+1); ``"dark"``: protein dark, invert (−1);
        ``"auto"``: −1 if the mean central-disc value of the first ``n_probe`` prepared images
        (:func:`central_contrast`) is below ``−threshold`` background σ, else +1.
    """
    if contrast == "white":
        return 1.0
    if contrast == "dark":
        return -1.0
    if contrast != "auto":
        raise InputError(f"unknown contrast '{contrast}'", field="contrast",
                         expected="'auto', 'white' or 'dark'")
    imgs = [b.images for b in iter_particle_batches(table, n_probe, target_size_px, phase_flip,
                                                      max_particles=n_probe)]
    value = central_contrast(torch.cat(imgs))
    return -1.0 if value < -threshold else 1.0


def iter_particle_batches(
    table,
    batch_size: int = 512,
    target_size_px: int = 64,
    phase_flip: bool = False,
    max_particles: int | None = None,
    sign: float = 1.0,
) -> Iterator[ParticleBatch]:
    """Read and prepare the particles of a table in batches (stack by stack, memory-mapped).

    Parameters
    ----------
    table : cryoframe.io.star.ParticleTable
        From :func:`read_particle_table` (its ``source`` locates relative stack paths).
    batch_size : int
        Images per batch.
    target_size_px, phase_flip
        See :func:`prepare_images`.
    max_particles : int, optional
        Only the first ``max_particles`` rows.
    sign : float
        Multiplies the prepared images (−1 inverts dark-protein data; see :func:`contrast_sign`).

    Yields
    ------
    ParticleBatch
    """
    star = Path(table.source) if table.source is not None else Path("particles.star")
    df = table.particles
    n = len(df) if max_particles is None else min(len(df), int(max_particles))
    idx, files = _parse_image_names(df["rlnImageName"].iloc[:n].tolist(), star)
    pix_all = pixel_size_angstrom(table)[:n]
    order = sorted(range(n), key=lambda i: (files[i], idx[i]))
    stacks: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        rows = np.asarray(order[start:start + batch_size], dtype=np.int64)
        imgs = []
        for r in rows:
            f = files[r]
            if f not in stacks:
                stacks.clear()  # keep one memory map open at a time
                # read_mrc, not read_image_stack: a STAR file's images are a stack whatever
                # the header's ispg says (e.g. EMPIAR-10076 .mrc); the STAR pixel size is used
                data = _read_stack(_resolve(f, star))
                stacks[f] = data[None] if data.ndim == 2 else data
            data = stacks[f]
            if idx[r] >= data.shape[0]:
                raise InputError(f"image {idx[r] + 1} requested from a stack of {data.shape[0]}",
                                 file=star, field="rlnImageName",
                                 expected=f"indices <= {data.shape[0]} for {f}")
            imgs.append(np.asarray(data[idx[r]], dtype=np.float32))
        sizes = {im.shape for im in imgs}
        groups = [rows] if len(sizes) == 1 else \
            [rows[[im.shape == sz for im in imgs]] for sz in sizes]
        for g in groups:
            pos = [int(np.nonzero(rows == r)[0][0]) for r in g]
            stack = np.stack([imgs[p] for p in pos])
            ctf = _ctf_columns(df, g, star) if phase_flip else None
            prepared, pix = prepare_images(stack, pix_all[g], target_size_px, phase_flip, ctf)
            if sign != 1.0:
                prepared = prepared * sign
            yield ParticleBatch(images=prepared, rows=g, pixel_size_angstrom=pix)


def iter_oriented_batches(table, contrast: str = "auto", batch_size: int = 512,
                          target_size_px: int = 64, phase_flip: bool = False,
                          threshold: float = 0.05) -> Iterator[tuple[ParticleBatch, float]]:
    """Like :func:`iter_particle_batches` with protein made white, in one pass: for
    ``contrast="auto"`` the sign is decided on the first batch (:func:`contrast_sign` rule) and
    applied to every batch. Yields ``(batch, sign)``.
    """
    if contrast != "auto":
        sign = contrast_sign(table, contrast)
        for b in iter_particle_batches(table, batch_size, target_size_px, phase_flip, sign=sign):
            yield b, sign
        return
    sign = None
    for b in iter_particle_batches(table, batch_size, target_size_px, phase_flip):
        if sign is None:
            sign = -1.0 if central_contrast(b.images) < -threshold else 1.0
        if sign != 1.0:
            b.images = b.images * sign
        yield b, sign


def load_prepared_particles(star: str | Path, target_size_px: int = 64, phase_flip: bool = False,
                            max_particles: int | None = None, contrast: str = "auto"):
    """All prepared images of a STAR file in table order (protein white, see
    :func:`contrast_sign`).

    Returns
    -------
    images : Tensor
        `(n, target, target)`.
    table : cryoframe.io.star.ParticleTable
    """
    table = read_particle_table(star)
    n = len(table) if max_particles is None else min(len(table), int(max_particles))
    out = torch.empty(n, target_size_px, target_size_px)
    sign = contrast_sign(table, contrast, target_size_px=target_size_px, phase_flip=phase_flip)
    for batch in iter_particle_batches(table, 1024, target_size_px, phase_flip, n, sign):
        out[torch.as_tensor(batch.rows)] = batch.images
    return out, table
