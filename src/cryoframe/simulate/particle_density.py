"""Densities for particle images: reading a map or atomic model, its longest diameter, centring."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoframe._errors import InputError
from cryoframe.data import MAPS_10A, STRUCTURES, map_path
from cryoframe.io.mrc import read_mrc
from cryoframe.simulate.density import load_density as density_from_source


def read_density_volume(source: str | Path) -> tuple[np.ndarray, float]:
    """Read a density: a bundled map ID (``"1BXN"``), an MRC path (``.gz`` allowed), or a bundled
    structure ID / PDB / mmCIF file (``"7P6Z"``), whose 10 Å density is computed from the atoms by
    :func:`cryoframe.simulate.density.load_density`.

    Returns
    -------
    volume : numpy.ndarray
        `(d, d, d)` float32 density, indexed (z, y, x).
    voxel_size_angstrom : float
        Voxel size in Å.
    """
    src = str(source)
    if (src.upper() in STRUCTURES and src.upper() not in MAPS_10A) or src.lower().endswith(
            (".pdb", ".cif", ".pdb.gz", ".cif.gz", ".ent", ".mmcif")):

        dm = density_from_source(src)
        return np.asarray(dm.data, dtype=np.float32), float(dm.voxel_size_angstrom)
    path = map_path(src) if src.upper() in MAPS_10A and not Path(src).exists() else Path(src)
    if not path.exists():
        raise InputError("density map not found", file=path, field="map",
                         expected=f"an MRC file or one of {sorted(MAPS_10A)}")
    vol = read_mrc(path)  # not read_volume: the bundled polnet maps carry ispg = 0
    data = np.asarray(vol.data, dtype=np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise InputError(f"map is not cubic: shape {data.shape}", file=path, field="shape",
                         expected="a cubic (d, d, d) map")
    return data, float(vol.voxel_size_angstrom)


def _support_mask(volume: np.ndarray, threshold_fraction: float) -> np.ndarray:
    vmax = float(volume.max())
    if vmax <= 0:
        raise InputError("density has no positive values", field="volume",
                         expected="a density map with positive signal")
    return volume > threshold_fraction * vmax


def longest_diameter_angstrom(volume: np.ndarray, voxel_size_angstrom: float,
                              threshold_fraction: float = 0.1) -> float:
    """Longest extent of the density: largest distance between two voxels above threshold.

    Parameters
    ----------
    volume : numpy.ndarray
        `(d, d, d)` density.
    voxel_size_angstrom : float
        Voxel size in Å.
    threshold_fraction : float
        Voxels above this fraction of the maximum count as the particle.

    Returns
    -------
    float
        Diameter in Å (voxel centres' distance plus one voxel).
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    pts = np.argwhere(_support_mask(np.asarray(volume), threshold_fraction)).astype(np.float64)
    if len(pts) < 5:
        return float(voxel_size_angstrom * max(len(pts), 1))
    try:
        hull = pts[ConvexHull(pts).vertices]
    except Exception:  # degenerate (planar) support: use all points
        hull = pts
    return float((pdist(hull).max() + 1.0) * voxel_size_angstrom)


def centre_density(volume: np.ndarray, threshold_fraction: float = 0.1) -> np.ndarray:
    """Shift the density (by whole voxels) so its centre of mass sits at the box centre ``d//2``."""
    vol = np.asarray(volume, dtype=np.float32)
    w = np.where(_support_mask(vol, threshold_fraction), vol, 0.0)
    grids = np.indices(vol.shape)
    com = [(g * w).sum() / w.sum() for g in grids]
    shift = [int(round(s // 2 - c)) for s, c in zip(vol.shape, com)]
    return np.roll(vol, shift, axis=(0, 1, 2))
