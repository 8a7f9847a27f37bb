"""RELION-5 / WarpTools tilt-series particles (2D tilt stacks per particle) as 2D images.

WarpTools and RELION 5 export each subtomogram as a stack of its tilt images
(``rlnTomoSubTomosAre2DStacks = 1``): one ``.mrcs`` per particle, one image per tilt, with the
per-tilt geometry and CTF in the tomograms STAR (one loop per tomogram). Every visible tilt
image becomes one 2D particle for :func:`cryoframe.recon.reconstruct.reconstruct_particles`:

* pose: RELION 5's ``M = A_f · A_s · A_p`` (xyz), where ``A_p`` is the particle's RELION Euler
  matrix of ``rlnAngleRot/Tilt/Psi`` and ``A_s`` that of ``rlnTomoSubtomogramRot/Tilt/Psi``
  (identity when absent; both map reference → tomogram), and ``A_f`` the rotation part of the
  tilt's projection matrix (rows ``rlnTomoProjX/Y/Z``: tomogram → tilt image, z = depth). A
  point ``r`` of the reference appears at ``(M r)_xy`` in the tilt image. In cryoframe's zyx
  matrices ``R = Π M Π``. Source (RELION 5, ``3dem/relion``): ``ParticleSet::getMatrix3x3``
  (``A_subtomogram · A_particle`` with ``Euler::anglesToMatrix3``, the same matrix as
  ``Euler_angles2matrix``), ``Experiment::read`` (``P = projectionMatrices[f] · A``) and
  ``MlOptimiser`` (``A = Aproj · Euler_angles2matrix(rot, tilt, psi)``, then the single-particle
  ``Projector``: the slice at ``A⁻¹ (k_x, k_y, 0)``). The tests project an asymmetric map with
  these poses and check that reconstruction returns it, not its mirror, and that a point lands
  where ``Tomogram::projectPoint`` puts it. (Before, an empirical z mirror of the
  reference was composed here instead; it matched the ``warp-ribo`` reference map, whose hand is the
  mirror of what these STARs give — see :mod:`cryoframe.bench.warp_ribo`.)
* shift: the particle's 3D shift ``−A_s · rlnOrigin{X,Y,Z}Angst`` projected by ``A_f`` (y, x)
  (RELION: ``ParticleSet::getPosition`` subtracts ``A_subtomogram · offset``);
* CTF: the tilt's ``rlnDefocusU/V/Angle`` plus the particle's depth offset along the beam,
  ``handedness · (A_f (p − c))_z`` in Å (RELION's ``Tomogram::getCtf`` with slope 1), the
  tilt's ``rlnCtfScalefactor`` and dose weighting ``exp(−D / (2 N_c(k)))`` with
  ``N_c(k) = 0.245 k^−1.665 + 2.81`` e/Å² (Grant & Grigorieff 2015, as RELION) for the tilt's
  pre-exposure ``D = rlnMicrographPreExposure``;
* frames with ``rlnTomoVisibleFrames = 0`` are skipped; ``rlnCtfDataAreCtfPremultiplied = 1``
  (WarpTools) inserts the images as they are with weight ``(CTF · dose · scale)²``;
* gold-standard halves are drawn per particle (all tilts of a particle in one half).

Coordinates ``rlnCoordinateX/Y/Z`` are taken in pixels of ``rlnImagePixelSize`` ·
(tilt-series pixel · binning), RELION-5's ``rlnCenteredCoordinate{X,Y,Z}Angst`` in Å from the
tomogram centre when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryoframe._errors import InputError
from cryoframe.geometry.euler import relion_euler_to_matrix
from cryoframe.geometry.rotations import xyz_to_zyx_matrix
from cryoframe.io.star import (
    pixel_size_angstrom,
    read_particles,
    read_star,
    read_tomograms,
    require_columns,
)
from cryoframe.particles.stack import _read_stack, _resolve
from cryoframe.recon.reconstruct import ParticleSet

__all__ = [
    "dose_weights",
    "is_tilt_series_star",
    "parse_matrix_rows",
    "read_tilt_series_particles",
]


def is_tilt_series_star(star: str | Path) -> bool:
    """True for RELION-5 / WarpTools 2D-stack tilt-series particle STARs or optimisation sets."""
    star = Path(star)
    if not star.exists():
        raise InputError("file not found", file=star, field="STAR", expected="a particle STAR")
    blocks = read_star(star)
    for v in blocks.values():
        if isinstance(v, dict) and ("rlnTomoSubTomosAre2DStacks" in v
                                    or "rlnTomoParticlesFile" in v):
            return True
        if isinstance(v, pd.DataFrame) and "rlnTomoVisibleFrames" in v.columns:
            return True
    return False


def parse_matrix_rows(values: pd.Series, file: Path, field: str) -> np.ndarray:
    """Parse RELION ``[a,b,c,d]`` row strings into `(n, 4)` floats."""
    out = []
    for v in values.astype(str):
        try:
            row = [float(x) for x in v.strip().strip("[]").split(",")]
        except ValueError:
            row = []
        if len(row) != 4:
            raise InputError(f"bad matrix row '{v}'", file=file, field=field,
                             expected="'[a,b,c,d]' with four numbers")
        out.append(row)
    return np.asarray(out, dtype=np.float64)


def dose_weights(k_per_angstrom: torch.Tensor, dose_e_per_angstrom2: torch.Tensor) -> torch.Tensor:
    """Grant & Grigorieff exposure filter ``exp(−D / (2 N_c(k)))``, `(b, m)` for `(m,)` and `(b,)`."""
    k = k_per_angstrom.clamp_min(1e-6)
    nc = 0.245 * k ** -1.665 + 2.81
    return torch.exp(-dose_e_per_angstrom2[:, None] / (2 * nc[None, :]))


def _resolve_inputs(star: Path, tomograms: Path | None) -> tuple[Path, Path]:
    from cryoframe.io.star import read_star

    blocks = read_star(star)
    for v in blocks.values():
        if isinstance(v, dict) and "rlnTomoParticlesFile" in v:  # optimisation set
            parts = star.parent / str(v["rlnTomoParticlesFile"])
            tomo = tomograms or star.parent / str(v.get("rlnTomoTomogramsFile", ""))
            return parts, Path(tomo)
    if tomograms is not None:
        return star, Path(tomograms)
    for cand in (star.with_name(star.stem + "_tomograms.star"),
                 star.with_name(star.stem + "_optimisation_set.star")):
        if cand.exists():
            if cand.name.endswith("_optimisation_set.star"):
                return _resolve_inputs(cand, None)
            return star, cand
    raise InputError("no tomograms STAR for these tilt-series particles", file=star,
                     field="--tomograms", expected=f"--tomograms or {star.stem}_tomograms.star")


def read_tilt_series_particles(star: str | Path, tomograms: str | Path | None = None,
                               seed: int = 0) -> ParticleSet:
    """Expand tilt-series particles into one 2D image per visible tilt (see module docstring).

    Returns
    -------
    ParticleSet
        Per tilt image: pose, shift, CTF parameters (with ``rlnMicrographPreExposure``),
        half; ``premultiplied`` from the optics table.
    """
    star = Path(star)
    pstar, tstar = _resolve_inputs(star, None if tomograms is None else Path(tomograms))
    if not tstar.exists():
        raise InputError("tomograms STAR not found", file=tstar, field="rlnTomoTomogramsFile",
                         expected="an existing RELION-5 tomograms STAR")
    table = read_particles(pstar)
    df = table.particles
    require_columns(df, ["rlnTomoName", "rlnImageName", "rlnAngleRot", "rlnAngleTilt",
                         "rlnAnglePsi"], file=pstar, what="data_particles")
    tomo = read_tomograms(tstar)
    pix = float(np.unique(pixel_size_angstrom(table, file=pstar))[0])
    glob = tomo.tomograms.set_index(tomo.tomograms["rlnTomoName"].astype(str))
    n_part = len(df)
    rng = np.random.default_rng(seed)
    if "rlnRandomSubset" in df.columns:
        part_subset = df["rlnRandomSubset"].to_numpy().astype(np.int64)
    else:
        part_subset = np.ones(n_part, dtype=np.int64)
        part_subset[rng.permutation(n_part)[: n_part // 2]] = 2
    eul = torch.tensor(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(np.float64))
    a_part = relion_euler_to_matrix(eul[:, 0], eul[:, 1], eul[:, 2]).to(torch.float64)
    sub_cols = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
    if all(c in df.columns for c in sub_cols):
        es = torch.tensor(df[sub_cols].to_numpy(np.float64))
        a_sub = relion_euler_to_matrix(es[:, 0], es[:, 1], es[:, 2]).to(torch.float64)  # zyx
    else:
        a_sub = torch.eye(3, dtype=torch.float64).expand(n_part, 3, 3)
    origin = np.zeros((n_part, 3))  # xyz Å
    for i, a in enumerate("XYZ"):
        if f"rlnOrigin{a}Angst" in df.columns:
            origin[:, i] = df[f"rlnOrigin{a}Angst"].to_numpy(np.float64)
    files, idx, rots, shifts, subset = [], [], [], [], []
    ctf_rows: dict[str, list[float]] = {k: [] for k in (
        "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnCtfScalefactor",
        "rlnMicrographPreExposure")}
    box = None
    for p in range(n_part):
        row = df.iloc[p]
        name = str(row["rlnTomoName"])
        if name not in tomo.tilt_series or name not in glob.index:
            raise InputError(f"tomogram '{name}' not in the tomograms STAR", file=tstar,
                             field="rlnTomoName", expected=f"one of {sorted(tomo.tilt_series)}")
        tilts = tomo.tilt_series[name]
        require_columns(tilts, ["rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnDefocusU",
                                "rlnDefocusV", "rlnDefocusAngle"], file=tstar, what=name)
        proj = np.stack([parse_matrix_rows(tilts[f"rlnTomoProj{a}"], tstar, f"rlnTomoProj{a}")
                         for a in "XYZ"], 1)[:, :, :3]  # (f, 3, 3) xyz rotation rows
        g = glob.loc[name]
        ts_pix = float(g.get("rlnTomoTiltSeriesPixelSize", pix))
        hand = float(g.get("rlnTomoHand", 1.0))
        if "rlnCenteredCoordinateXAngst" in df.columns:
            pos = np.array([row[f"rlnCenteredCoordinate{a}Angst"] for a in "XYZ"], float)
        else:
            binning = float(row.get("rlnTomoSubtomogramBinning", pix / ts_pix))
            size = np.array([float(g.get(f"rlnTomoSize{a}", 0.0)) for a in "XYZ"])
            coord = np.array([float(row[f"rlnCoordinate{a}"]) for a in "XYZ"])
            pos = coord * binning * ts_pix - size * ts_pix / 2
        a_sub_xyz = xyz_to_zyx_matrix(a_sub[p]).numpy()
        off_xyz = a_sub_xyz @ origin[p]  # origin offset in the tomogram frame (Å)
        pos = pos - off_xyz  # particle centre (Å) relative to the tomogram centre
        path = _resolve(str(row["rlnImageName"]).split("@")[-1], pstar)
        data = _read_stack(path)
        nf = data.shape[0] if data.ndim == 3 else 1
        if box is None:
            box = int(data.shape[-1])
        if data.shape[-1] != box or data.shape[-2] != box:
            raise InputError(f"images of {data.shape[-2]}x{data.shape[-1]} px", file=path,
                             field="nx", expected=f"{box}x{box} like the other particles")
        if nf != len(tilts):
            raise InputError(f"{nf} tilt images for {len(tilts)} tilts of {name}", file=path,
                             field="nz", expected=f"{len(tilts)} images")
        visible = np.ones(len(tilts), dtype=bool)
        if "rlnTomoVisibleFrames" in df.columns:
            vis = str(row["rlnTomoVisibleFrames"]).strip("[]").split(",")
            visible = np.array([v.strip() == "1" for v in vis], dtype=bool)
            if len(visible) != len(tilts):
                raise InputError(f"{len(visible)} visibility flags for {len(tilts)} tilts",
                                 file=pstar, field="rlnTomoVisibleFrames",
                                 expected=f"{len(tilts)} flags")
        scale = (tilts["rlnCtfScalefactor"].to_numpy(np.float64)
                 if "rlnCtfScalefactor" in tilts.columns else np.ones(len(tilts)))
        dose = (tilts["rlnMicrographPreExposure"].to_numpy(np.float64)
                if "rlnMicrographPreExposure" in tilts.columns else np.zeros(len(tilts)))
        for f in np.nonzero(visible)[0]:
            a_f = torch.as_tensor(proj[f])
            rots.append(xyz_to_zyx_matrix(a_f) @ a_sub[p] @ a_part[p])
            s_xyz = a_f.numpy() @ (-off_xyz)
            shifts.append([s_xyz[1], s_xyz[0]])
            depth = hand * float(proj[f][2] @ pos)
            ctf_rows["rlnDefocusU"].append(float(tilts["rlnDefocusU"].iloc[f]) + depth)
            ctf_rows["rlnDefocusV"].append(float(tilts["rlnDefocusV"].iloc[f]) + depth)
            ctf_rows["rlnDefocusAngle"].append(float(tilts["rlnDefocusAngle"].iloc[f]))
            ctf_rows["rlnCtfScalefactor"].append(float(scale[f]))
            ctf_rows["rlnMicrographPreExposure"].append(float(dose[f]))
            files.append(path)
            idx.append(int(f))
            subset.append(int(part_subset[p]))
    n = len(idx)
    if n == 0:
        raise InputError("no visible tilt images", file=pstar, field="rlnTomoVisibleFrames",
                         expected="at least one visible frame")

    def one(col: str, default: float) -> float:
        return float(df[col].iloc[0]) if col in df.columns else default

    ctf = {k: np.asarray(v, dtype=np.float64) for k, v in ctf_rows.items()}
    ctf["rlnVoltage"] = np.full(n, one("rlnVoltage", 300.0))
    ctf["rlnSphericalAberration"] = np.full(n, one("rlnSphericalAberration", 2.7))
    ctf["rlnAmplitudeContrast"] = np.full(n, one("rlnAmplitudeContrast", 0.1))
    ctf["rlnPhaseShift"] = np.zeros(n)
    ctf["rlnCtfBfactor"] = np.zeros(n)
    premult = bool(one("rlnCtfDataAreCtfPremultiplied", 0.0))
    return ParticleSet(star=pstar, stack_files=files, stack_index=np.asarray(idx),
                       rotations=torch.stack(rots).to(torch.float32),
                       shifts_yx_angstrom=torch.tensor(shifts, dtype=torch.float32), ctf=ctf,
                       subset=np.asarray(subset), pixel_size_angstrom=pix,
                       box_size_px=int(box), premultiplied=premult)
