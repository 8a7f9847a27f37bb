"""Reconstruct a map from 2D particle images with known poses (RELION 3.0–5 STAR + MRCS).

Pipeline of :func:`reconstruct_star`:

* read the STAR (optics merged per particle), poses (``rlnAngleRot/Tilt/Psi`` → active zyx
  matrices, :func:`cryoframe.io.star.poses_from_particles`), shifts (``−rlnOrigin*Angst``), CTF
  (``rlnDefocusU/V/Angle``, ``rlnVoltage``, ``rlnSphericalAberration``,
  ``rlnAmplitudeContrast``, optional ``rlnPhaseShift``, ``rlnCtfBfactor``,
  ``rlnCtfScalefactor``; RELION sign for contrast-inverted particles);
* gold-standard halves from ``rlnRandomSubset`` (1/2) when present, else a seeded random split;
* stream the stacks in batches (memory-mapped, memory independent of the particle count) into
  two :class:`~cryoframe.recon.insertion.FourierAccumulator`;
* :func:`~cryoframe.recon.halves.finish_half_maps`; write ``half1.mrc``, ``half2.mrc``,
  ``map.mrc``, ``fsc.json``, ``fsc.png`` atomically into the output folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig, atomic_write_text
from cryoframe._errors import InputError
from cryoframe.fourier.ctf import ctf_2d
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import pixel_size_angstrom, poses_from_particles, require_columns
from cryoframe.particles.stack import _parse_image_names, _read_stack, _resolve, read_particle_table
from cryoframe.recon.halves import HalfMapResult, finish_half_maps
from cryoframe.recon.insertion import FourierAccumulator

__all__ = [
    "ParticleSet",
    "ReconstructionRun",
    "ctf_at_points",
    "iter_image_batches",
    "read_particle_set",
    "reconstruct_particles",
    "reconstruct_star",
    "write_reconstruction",
]

_CTF_COLUMNS = ["rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage",
                "rlnSphericalAberration", "rlnAmplitudeContrast"]


@dataclass
class ParticleSet:
    """Everything reconstruction needs from a 2D particle STAR, per particle.

    Attributes
    ----------
    star : Path
        Source STAR file.
    stack_files : list of Path
        `(n,)` resolved stack path of each particle.
    stack_index : numpy.ndarray
        `(n,)` 0-based image index in its stack.
    rotations : Tensor
        `(n, 3, 3)` poses (active, zyx).
    shifts_yx_angstrom : Tensor
        `(n, 2)` particle centre − box centre.
    ctf : dict of numpy.ndarray or None
        Per-particle CTF parameters (``None``: no CTF columns, images used as is).
    subset : numpy.ndarray
        `(n,)` half (1 or 2).
    pixel_size_angstrom : float
        Image pixel size.
    box_size_px : int
        Image edge.
    premultiplied : bool
        Images are already multiplied by their CTF (``rlnCtfDataAreCtfPremultiplied``).
    """

    star: Path
    stack_files: list[Path]
    stack_index: np.ndarray
    rotations: torch.Tensor
    shifts_yx_angstrom: torch.Tensor
    ctf: dict[str, np.ndarray] | None
    subset: np.ndarray
    pixel_size_angstrom: float
    box_size_px: int
    premultiplied: bool = False
    has_angles: bool = True

    def __len__(self) -> int:
        return len(self.stack_index)


def _one_value(values: np.ndarray, star: Path, field: str) -> float:
    u = np.unique(np.round(values.astype(np.float64), 6))
    if len(u) != 1:
        raise InputError(f"{len(u)} different values {u[:4].tolist()}", file=star, field=field,
                         expected="one value for all particles (split the STAR per optics group)")
    return float(u[0])


def read_particle_set(star: str | Path, seed: int = 0, require_ctf: bool = False,
                      require_angles: bool = True) -> ParticleSet:
    """Read and validate a 2D particle STAR file for reconstruction.

    With ``require_angles=False`` a table without ``rlnAngleRot/Tilt/Psi`` gets identity
    rotations and ``has_angles = False`` (for refinement from scratch and ab initio).

    Raises
    ------
    InputError
        Missing angle / image columns, unresolvable stacks, mixed pixel or box sizes, bad
        ``rlnRandomSubset`` values, images of the wrong size.
    """
    star = Path(star)
    if not star.exists():
        raise InputError("file not found", file=star, field="STAR", expected="a particle STAR")
    table = read_particle_table(star)
    df = table.particles
    angle_cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    has_angles = all(c in df.columns for c in angle_cols)
    if require_angles or has_angles:
        require_columns(df, angle_cols, file=star, what="particle table")
    pix = _one_value(pixel_size_angstrom(table), star, "rlnImagePixelSize")
    if has_angles:
        rotations, shifts = poses_from_particles(table)
    else:
        table.particles = df.assign(rlnAngleRot=0.0, rlnAngleTilt=0.0, rlnAnglePsi=0.0)
        rotations, shifts = poses_from_particles(table)
        df = table.particles
    idx, names = _parse_image_names(df["rlnImageName"].astype(str).tolist(), star)
    cache: dict[str, Path] = {}
    files = []
    for nm in names:
        if nm not in cache:
            cache[nm] = _resolve(nm, star)
        files.append(cache[nm])
    box = None
    for path in sorted(set(cache.values())):
        data = _read_stack(path)
        nz, ny, nx = (1, *data.shape) if data.ndim == 2 else data.shape
        if ny != nx:
            raise InputError(f"non-square images {ny}x{nx}", file=path, field="nx/ny",
                             expected="square particle images")
        if box is None:
            box = nx
        elif nx != box:
            raise InputError(f"image size {nx} differs from {box}", file=path,
                             field="nx", expected=f"all stacks with {box}-pixel images")
        top = max(i for i, f in zip(idx, files) if f == path)
        if top >= nz:
            raise InputError(f"image {top + 1} requested from a stack of {nz}", file=star,
                             field="rlnImageName", expected=f"indices <= {nz} for {path.name}")
    if "rlnImageSize" in df.columns and box is not None:
        sz = _one_value(df["rlnImageSize"].to_numpy(), star, "rlnImageSize")
        if int(sz) != box:
            raise InputError(f"rlnImageSize {int(sz)} but the stacks hold {box}-pixel images",
                             file=star, field="rlnImageSize", expected=str(box))
    n = len(df)
    if "rlnRandomSubset" in df.columns:
        subset = df["rlnRandomSubset"].to_numpy().astype(np.int64)
        if not np.isin(subset, [1, 2]).all() or len(np.unique(subset)) < 2:
            raise InputError("rlnRandomSubset must split the particles into 1 and 2", file=star,
                             field="rlnRandomSubset", expected="values 1 and 2, both present")
    else:
        rng = np.random.default_rng(seed)
        subset = np.ones(n, dtype=np.int64)
        subset[rng.permutation(n)[: n // 2]] = 2
    ctf = None
    if all(c in df.columns for c in _CTF_COLUMNS):
        ctf = {c: df[c].to_numpy(np.float64) for c in _CTF_COLUMNS}
        for c, default in (("rlnPhaseShift", 0.0), ("rlnCtfBfactor", 0.0),
                           ("rlnCtfScalefactor", 1.0)):
            ctf[c] = df[c].to_numpy(np.float64) if c in df.columns else np.full(n, default)
        for c in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
            _one_value(ctf[c], star, c)
    elif require_ctf:
        missing = [c for c in _CTF_COLUMNS if c not in df.columns]
        raise InputError("no CTF parameters", file=star, field=missing[0],
                         expected="rlnDefocusU/V/Angle and optics voltage, Cs, Q")
    premult = False
    if "rlnCtfDataAreCtfPremultiplied" in df.columns:
        premult = bool(_one_value(df["rlnCtfDataAreCtfPremultiplied"].to_numpy(), star,
                                  "rlnCtfDataAreCtfPremultiplied"))
    return ParticleSet(star=star, stack_files=files, stack_index=idx,
                       rotations=rotations.to(torch.float32),
                       shifts_yx_angstrom=shifts[:, 1:].to(torch.float32), ctf=ctf,
                       subset=subset, pixel_size_angstrom=pix, box_size_px=int(box or 0),
                       premultiplied=premult, has_angles=has_angles)


def iter_image_batches(ps: ParticleSet, batch_size: int = 256,
                       order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rows, images)`` batches, `(b,)` and `(b, n, n)` float32, reading stacks lazily."""
    from cryoframe.particles.stack import _read_stack

    rows_all = np.arange(len(ps)) if order is None else np.asarray(order)
    open_stacks: dict[Path, np.ndarray] = {}
    for i in range(0, len(rows_all), batch_size):
        rows = rows_all[i:i + batch_size]
        out = np.empty((len(rows), ps.box_size_px, ps.box_size_px), dtype=np.float32)
        for j, r in enumerate(rows):
            f = ps.stack_files[r]
            if f not in open_stacks:
                if len(open_stacks) > 64:
                    open_stacks.clear()
                data = _read_stack(f)
                open_stacks[f] = data[None] if data.ndim == 2 else data
            out[j] = open_stacks[f][ps.stack_index[r]]
        yield rows, out


def ctf_at_points(acc: FourierAccumulator, pixel_size_angstrom: float,
                  params: dict[str, np.ndarray], rows: np.ndarray) -> torch.Tensor:
    """RELION-sign CTF (times ``rlnCtfScalefactor``, and the exposure filter of
    :func:`cryoframe.recon.tomo.dose_weights` when ``rlnMicrographPreExposure`` is given) of
    particles ``rows`` at the inserted points.

    Returns
    -------
    Tensor
        `(b, m)` float32 values of ``−ctf_2d`` on the padded grid at :attr:`k_points`.
    """
    P = acc.P

    def g(c: str) -> torch.Tensor:
        return torch.as_tensor(params[c][rows])

    c = ctf_2d((P, P), pixel_size_angstrom, g("rlnDefocusU"), g("rlnDefocusV"),
               g("rlnDefocusAngle"), voltage_kv=float(params["rlnVoltage"][0]),
               cs_mm=float(params["rlnSphericalAberration"][0]),
               amplitude_contrast=float(params["rlnAmplitudeContrast"][0]),
               b_factor_angstrom2=g("rlnCtfBfactor"), phase_shift_deg=g("rlnPhaseShift"),
               rfft=True)
    c = -c.reshape(len(rows), -1)[:, acc.rfft_indices] * g("rlnCtfScalefactor")[:, None]
    if "rlnMicrographPreExposure" in params:  # tilt series: exposure filter per tilt
        from cryoframe.recon.tomo import dose_weights

        k = acc.k_points.to(torch.float64).norm(dim=-1) / (P * pixel_size_angstrom)
        c = c * dose_weights(k, g("rlnMicrographPreExposure"))
    return c.to(torch.float32)


@dataclass
class ReconstructionRun:
    """A finished reconstruction: maps, assessment and throughput."""

    result: HalfMapResult
    n_particles: int
    seconds: float
    images_per_s: float


def reconstruct_particles(ps: ParticleSet, pad: int = 2, batch_size: int = 256,
                          progress: Callable[[int, int], None] | None = None,
                          mask_radius_px: float | None = None) -> ReconstructionRun:
    """Insert every particle of ``ps`` into its half and finish the maps.

    Parameters
    ----------
    ps : ParticleSet
        Particles (see :func:`read_particle_set`).
    pad : int
        Fourier oversampling.
    batch_size : int
        Images per batch.
    progress : callable, optional
        Called with ``(done, total)`` after each batch.
    mask_radius_px : float, optional
        Radius of the soft sphere of the masked FSC.
    """
    n = ps.box_size_px
    accs = {1: FourierAccumulator(n, pad), 2: FourierAccumulator(n, pad)}
    t0 = time.perf_counter()
    done = 0
    for rows, imgs in iter_image_batches(ps, batch_size):
        for half, acc in accs.items():
            sel = rows[ps.subset[rows] == half]
            if len(sel) == 0:
                continue
            x = torch.from_numpy(imgs[ps.subset[rows] == half])
            spec = acc.image_spectra(x, ps.shifts_yx_angstrom[sel] / ps.pixel_size_angstrom)
            ctf = None if ps.ctf is None else ctf_at_points(acc, ps.pixel_size_angstrom,
                                                           ps.ctf, sel)
            acc.insert(spec, ps.rotations[sel], ctf, premultiplied=ps.premultiplied)
        done += len(rows)
        if progress is not None:
            progress(done, len(ps))
    res = finish_half_maps(accs[1], accs[2], ps.pixel_size_angstrom, mask_radius_px)
    dt = time.perf_counter() - t0
    return ReconstructionRun(res, len(ps), dt, len(ps) / max(dt, 1e-9))


def plot_fsc(result: HalfMapResult, path: Path, title: str = "") -> Path:
    """FSC plot (masked, unmasked, 0.143 line) written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    f = result.freq_cycles_per_px / result.pixel_size_angstrom
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(f, result.fsc_masked, label="masked (soft sphere)")
    ax.plot(f, result.fsc_unmasked, label="unmasked", ls="--")
    ax.axhline(0.143, color="grey", lw=0.8)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(title or f"{result.resolution_angstrom:.2f} Å at 0.143, "
                 f"cFAR {result.cfar:.2f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path


def write_reconstruction(run: ReconstructionRun, out_dir: str | Path,
                         extra: dict | None = None) -> dict:
    """Write half maps, map, FSC JSON and plot into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = run.result
    for name, vol in (("half1.mrc", r.half1), ("half2.mrc", r.half2), ("map.mrc", r.full)):
        write_mrc(out / name, vol.numpy(), r.pixel_size_angstrom)
    summary = {
        "n_particles": run.n_particles, "pixel_size_angstrom": r.pixel_size_angstrom,
        "box_size_px": int(r.full.shape[-1]),
        "resolution_angstrom": r.resolution_angstrom,
        "resolution_unmasked_angstrom": r.resolution_unmasked_angstrom,
        "nyquist_limited": r.nyquist_limited, "cfar": r.cfar,
        "seconds": run.seconds, "images_per_s": run.images_per_s,
        "freq_per_angstrom": (r.freq_cycles_per_px / r.pixel_size_angstrom).tolist(),
        "fsc_masked": r.fsc_masked.tolist(), "fsc_unmasked": r.fsc_unmasked.tolist(),
        **(extra or {}),
    }
    atomic_write_text(out / "fsc.json", json.dumps(summary, indent=2) + "\n")
    plot_fsc(r, out / "fsc.png")
    return summary


def reconstruct_star(star: str | Path, out_dir: str | Path | None = None, pad: int = 2,
                     batch_size: int = 256, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None,
                     mask_radius_px: float | None = None) -> ReconstructionRun:
    """Read ``star``, reconstruct gold-standard half maps and (optionally) write them.

    Everything is validated before any output is written.
    """
    ps = read_particle_set(star, seed=seed)
    run = reconstruct_particles(ps, pad, batch_size, progress, mask_radius_px)
    if out_dir is not None:
        write_reconstruction(run, out_dir, {"star": str(star), "pad": pad, "seed": seed})
    return run
