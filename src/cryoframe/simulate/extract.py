"""Subtomogram extraction with ground truth (CryoEngine, App. C.1 "Subtomogram Extraction").

For particle ``p`` with true centre ``c`` (voxels) a picking error ``u ~ U(−a, a)³`` is drawn;
the box starts at ``round(c + u) − L//2``. A box is skipped when it leaves the tomogram or when
another particle centre lies within ``min_separation_px`` (17) of the proposed centre. The
particle's true centre inside the box is ``L//2 + offset_zyx_px`` (sub-voxel), recorded with the
pose, so ``box(x) ≈ ref(Rᵀ(x − L//2 − offset) + L//2)``. The binary mask marks voxels where the
ground-truth particle (the class density rotated by ``R`` and shifted by the offset) exceeds
``mask_threshold`` of its maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cryoframe.simulate.density import density_array
from cryoframe.simulate.projector import FourierProjector

__all__ = ["Extraction", "plan_extraction", "extract_boxes", "ground_truth_boxes",
           "extract_subtomograms"]


@dataclass
class Extraction:
    """Extracted subtomograms.

    Attributes
    ----------
    volumes : Tensor
        `(n, L, L, L)` float32 boxes from the tomogram(s); ``extra`` holds boxes of further
        tomograms at the same positions (e.g. the reconstructed unit noise).
    masks : Tensor
        `(n, L, L, L)` bool particle masks.
    table : pd.DataFrame
        One row per box: ``particle``, ``class_id``, ``box_start_{z,y,x}_px``,
        ``offset_{z,y,x}_px``, true centre in px and Å, ``R00``…``R22``.
    """

    volumes: torch.Tensor
    masks: torch.Tensor
    table: pd.DataFrame
    extra: dict


def plan_extraction(
    scene, box_size_px: int = 32, offset_max_px: float = 1.0, min_separation_px: float = 17.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Box positions, offsets and ground truth of every extractable particle of ``scene``."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng([seed, 303])
    c = np.asarray(scene.centres_zyx_px, dtype=np.float64)
    n = len(c)
    L = int(box_size_px)
    u = rng.uniform(-offset_max_px, offset_max_px, size=(n, 3))
    proposed = c + u
    start = np.round(proposed).astype(np.int64) - L // 2
    shape = np.asarray(scene.shape_zyx_px)
    inside = np.all((start >= 0) & (start + L <= shape), axis=1)
    tree = cKDTree(c)
    counts = np.array([len(tree.query_ball_point(p, min_separation_px)) for p in proposed])
    own = np.linalg.norm(u, axis=1) <= min_separation_px
    isolated = (counts - own.astype(int)) == 0
    keep = np.nonzero(inside & isolated)[0]
    offset = c[keep] - start[keep] - L // 2
    vs = scene.voxel_size_angstrom
    cols = {"particle": keep, "class_id": np.asarray(scene.class_ids)[keep].astype(np.int64)}
    for i, a in enumerate("zyx"):
        cols[f"box_start_{a}_px"] = start[keep, i]
    for i, a in enumerate("zyx"):
        cols[f"offset_{a}_px"] = offset[:, i]
    for i, a in enumerate("zyx"):
        cols[f"centre_{a}_px"] = c[keep, i]
        cols[f"centre_{a}_angstrom"] = c[keep, i] * vs
    r = np.asarray(scene.rotations)[keep].reshape(-1, 9)
    cols.update({f"R{i}{j}": r[:, 3 * i + j] for i in range(3) for j in range(3)})
    return pd.DataFrame(cols)


def extract_boxes(tomogram, table: pd.DataFrame, box_size_px: int = 32) -> torch.Tensor:
    """`(n, L, L, L)` copies of the boxes listed in ``table`` (``box_start_*_px``)."""
    tomo = torch.as_tensor(tomogram)
    L = int(box_size_px)
    s = table[["box_start_z_px", "box_start_y_px", "box_start_x_px"]].to_numpy()
    out = torch.empty((len(s), L, L, L), dtype=torch.float32)
    for i, (z, y, x) in enumerate(s):
        out[i] = tomo[z:z + L, y:y + L, x:x + L]
    return out


def rotations_of(table: pd.DataFrame) -> np.ndarray:
    """`(n, 3, 3)` poses from the ``R00``…``R22`` columns."""
    return table[[f"R{i}{j}" for i in range(3) for j in range(3)]].to_numpy().reshape(-1, 3, 3)


def ground_truth_boxes(densities, table: pd.DataFrame, box_size_px: int = 32) -> torch.Tensor:
    """`(n, L, L, L)` noise-free, undistorted particles (density rotated + shifted) per box."""
    L = int(box_size_px)
    out = torch.zeros((len(table), L, L, L), dtype=torch.float32)
    cls = table["class_id"].to_numpy()
    R = torch.as_tensor(rotations_of(table).copy(), dtype=torch.float32)
    off = torch.as_tensor(table[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy().copy(),
                          dtype=torch.float32)
    for c in np.unique(cls):
        d = densities[int(c)]
        proj = FourierProjector(density_array(d))
        idx = np.nonzero(cls == c)[0]
        n_grid = max(L, proj.size + (proj.size % 2))
        for s in range(0, len(idx), 256):
            j = idx[s:s + 256]
            v = proj.volumes(R[j], off[j], out_size=n_grid)
            a = n_grid // 2 - L // 2
            out[torch.as_tensor(j)] = v[:, a:a + L, a:a + L, a:a + L]
    return out


def extract_subtomograms(
    tomogram, scene, densities, *, box_size_px: int = 32, offset_max_px: float = 1.0,
    min_separation_px: float = 17.0, mask_threshold: float = 0.05, seed: int = 0,
    extra_tomograms: dict | None = None,
) -> Extraction:
    """Extract boxes, masks and ground truth from a reconstructed tomogram (module docstring).

    Parameters
    ----------
    tomogram : Tensor
        `(D, H, W)` reconstruction.
    scene : Scene
        Ground truth of the sample.
    densities : sequence of DensityMap
        Class densities (for the masks).
    box_size_px, offset_max_px, min_separation_px : float
        ``L``, picking-error half range (voxels) and isolation radius.
    mask_threshold : float
        Mask level as a fraction of the ground-truth particle's maximum.
    seed : int
        Seed of the picking errors.
    extra_tomograms : dict, optional
        Further `(D, H, W)` volumes boxed at the same positions (e.g. ``{"noise": N}``).
    """
    table = plan_extraction(scene, box_size_px, offset_max_px, min_separation_px, seed)
    vols = extract_boxes(tomogram, table, box_size_px)
    gt = ground_truth_boxes(densities, table, box_size_px)
    peak = gt.reshape(len(gt), -1).amax(1).clamp_min(1e-12)
    masks = gt > mask_threshold * peak[:, None, None, None]
    extra = {k: extract_boxes(v, table, box_size_px) for k, v in (extra_tomograms or {}).items()}
    return Extraction(vols, masks, table, extra)
