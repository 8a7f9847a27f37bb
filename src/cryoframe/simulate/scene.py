"""Virtual sample: Poisson-disk particle placement with uniform SO(3) poses (CryoEngine, App. C.1).

Centres are drawn by dart throwing (random sequential addition) inside a ``(D, H, W)`` voxel box:
each accepted centre is a hard exclusion sphere of radius ``R_ex = L/2 + Δ`` (``L`` = subtomogram
box, ``Δ`` = safety margin), so any two centres are at least ``R_ex`` apart, and a candidate whose
distance to a face of the box is below ``R_ex`` is rejected. Placement stops at an exact particle
count or at a target occupancy, defined here as the fraction of the box volume covered by the
particles' ``L³`` subtomogram cubes, ``n·L³ / (D·H·W)``. Orientations are Shoemake-uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryoframe._errors import InputError
from cryoframe.geometry.rotations import random_rotations

__all__ = ["Scene", "poisson_disk_centres", "make_scene", "exclusion_radius_px"]


def exclusion_radius_px(box_size_px: int = 32, margin_px: float = 3.0) -> float:
    """``R_ex = L/2 + Δ`` in voxels (19 for the paper's ``L = 32``, ``Δ = 3``)."""
    return box_size_px / 2.0 + margin_px


@dataclass(frozen=True)
class Scene:
    """Ground truth of one virtual sample.

    Attributes
    ----------
    shape_zyx_px : tuple of int
        Tomogram shape ``(D, H, W)`` in voxels.
    voxel_size_angstrom : float
        Voxel size in Å.
    centres_zyx_px : np.ndarray
        `(n, 3)` particle centres in voxels, zyx, continuous (voxel ``i`` has its centre at ``i``).
    rotations : np.ndarray
        `(n, 3, 3)` active poses acting on zyx vectors (``particle(x) = ref(Rᵀ(x − c) + c)``).
    class_ids : np.ndarray
        `(n,)` integer class of each particle (index into the density list).
    """

    shape_zyx_px: tuple[int, int, int]
    voxel_size_angstrom: float
    centres_zyx_px: np.ndarray
    rotations: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.centres_zyx_px.shape[0])

    @property
    def centres_zyx_angstrom(self) -> np.ndarray:
        """`(n, 3)` centres in Å (voxel index × voxel size)."""
        return self.centres_zyx_px * self.voxel_size_angstrom

    def to_frame(self) -> pd.DataFrame:
        """One row per particle: class, centre (px and Å, zyx), rotation matrix entries."""
        c = self.centres_zyx_px
        cols = {
            "particle": np.arange(len(self)),
            "class_id": self.class_ids.astype(np.int64),
            "centre_z_px": c[:, 0], "centre_y_px": c[:, 1], "centre_x_px": c[:, 2],
        }
        cols.update({
            f"centre_{a}_angstrom": c[:, i] * self.voxel_size_angstrom for i, a in enumerate("zyx")
        })
        r = self.rotations.reshape(-1, 9)
        cols.update({f"R{i}{j}": r[:, 3 * i + j] for i in range(3) for j in range(3)})
        return pd.DataFrame(cols)


def poisson_disk_centres(
    shape_zyx_px: tuple[int, int, int],
    min_distance_px: float,
    *,
    n: int | None = None,
    occupancy: float | None = None,
    box_size_px: int = 32,
    boundary_px: float | None = None,
    rng: np.random.Generator | None = None,
    max_failures: int = 20000,
) -> np.ndarray:
    """Dart-throwing Poisson-disk centres in a box.

    Parameters
    ----------
    shape_zyx_px : tuple of int
        `(D, H, W)` box in voxels.
    min_distance_px : float
        Exclusion radius: no two centres closer than this (voxels).
    n : int, optional
        Exact number of centres; raises :class:`InputError` if it cannot be reached.
    occupancy : float, optional
        Target ``n·box_size_px³ / (D·H·W)`` (used when ``n`` is None).
    box_size_px : int
        Subtomogram edge ``L`` used by ``occupancy``.
    boundary_px : float, optional
        Minimum distance of a centre from every face (defaults to ``min_distance_px``).
    rng : numpy Generator, optional
        Source of randomness.
    max_failures : int
        Consecutive rejected candidates after which the box counts as saturated.

    Returns
    -------
    np.ndarray
        `(n, 3)` float64 centres, zyx voxels.
    """
    rng = np.random.default_rng() if rng is None else rng
    shape = np.asarray(shape_zyx_px, dtype=np.float64)
    bnd = min_distance_px if boundary_px is None else boundary_px
    lo, hi = np.full(3, bnd), shape - 1 - bnd
    if np.any(hi <= lo):
        raise InputError(
            f"box {tuple(shape_zyx_px)} too small for boundary margin {bnd:.1f} px",
            field="shape_zyx_px", expected=f"every edge > {2 * bnd + 1:.0f} voxels",
        )
    if n is None:
        if occupancy is None or not 0 < occupancy < 1:
            raise InputError("give n or an occupancy in (0, 1)", field="occupancy")
        n = max(1, int(round(occupancy * float(np.prod(shape)) / box_size_px**3)))
    cell = min_distance_px / math.sqrt(3.0)  # at most one centre per cell
    grid_shape = tuple(int(math.ceil(s / cell)) + 1 for s in shape)
    grid = -np.ones(grid_shape, dtype=np.int64)
    reach = int(math.ceil(min_distance_px / cell))
    out = np.empty((n, 3))
    count, failures = 0, 0
    d2 = min_distance_px**2
    while count < n:
        batch = lo + rng.random((256, 3)) * (hi - lo)
        for p in batch:
            g = (p / cell).astype(np.int64)
            sl = tuple(slice(max(0, gi - reach), gi + reach + 1) for gi in g)
            near = grid[sl]
            near = near[near >= 0]
            if near.size and np.min(np.sum((out[near] - p) ** 2, axis=1)) < d2:
                failures += 1
                if failures >= max_failures:
                    raise InputError(
                        f"box saturated after {count} particles (asked for {n})",
                        field="n_particles", expected=f"at most ~{count}",
                    )
                continue
            failures = 0
            out[count] = p
            grid[tuple(g)] = count
            count += 1
            if count == n:
                break
    return out


def make_scene(
    shape_zyx_px: tuple[int, int, int] = (200, 500, 500),
    n_classes: int = 1,
    *,
    n_particles: int | None = None,
    occupancy: float | None = 0.2,
    box_size_px: int = 32,
    margin_px: float = 3.0,
    voxel_size_angstrom: float = 10.0,
    seed: int = 0,
) -> Scene:
    """Place particles of ``n_classes`` classes (uniform class draw) with Shoemake poses.

    Parameters
    ----------
    shape_zyx_px : tuple of int
        Tomogram shape ``(D, H, W)``; the paper's default is 200 × 500 × 500.
    n_classes : int
        Number of density classes; class ids are drawn uniformly.
    n_particles, occupancy : int or float, optional
        Exact count, or target occupancy (see module docstring) when ``n_particles`` is None.
    box_size_px, margin_px : int, float
        ``L`` and ``Δ`` of the exclusion radius ``L/2 + Δ``.
    voxel_size_angstrom : float
        Voxel size in Å.
    seed : int
        Seed of the placement, poses and classes.

    Returns
    -------
    Scene
    """
    import torch


    rng = np.random.default_rng([seed, 101])
    r_ex = exclusion_radius_px(box_size_px, margin_px)
    centres = poisson_disk_centres(
        shape_zyx_px, r_ex, n=n_particles, occupancy=occupancy, box_size_px=box_size_px, rng=rng
    )
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rots = random_rotations(len(centres), generator=gen, dtype=torch.float64).numpy()
    classes = rng.integers(0, n_classes, size=len(centres))
    return Scene(tuple(int(s) for s in shape_zyx_px), float(voxel_size_angstrom), centres, rots,
                 classes)
