"""Viewing directions of particle poses (``Rᵀ e_z``) and their 12 icosahedral classes."""

from __future__ import annotations

import numpy as np
import torch


def viewing_directions(rotations: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Beam direction in reference coordinates, ``Rᵀ e_z``, as `(n, 3)` zyx unit vectors."""
    r = torch.as_tensor(rotations, dtype=torch.float32)
    return r[..., 0, :]  # row 0 of R = column 0 of Rᵀ = Rᵀ e_z


def _icosahedron_vertices() -> torch.Tensor:
    phi = (1.0 + 5.0 ** 0.5) / 2.0
    v = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    t = torch.tensor(v, dtype=torch.float32)
    return t / t.norm(dim=-1, keepdim=True)


def viewing_direction_classes(rotations: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each pose to one of 12 viewing-direction classes (in-plane angle ignored).

    The classes are the Voronoi cells of the 12 vertices of a regular icosahedron on the sphere of
    viewing directions (``Rᵀ e_z``), a near-uniform partition of S².

    Returns
    -------
    labels : Tensor
        `(n,)` int64 in [0, 12).
    distance_deg : Tensor
        `(n,)` angle in degrees between each viewing direction and its class centre.
    """
    d = viewing_directions(rotations)
    c = _icosahedron_vertices()
    cos = (d @ c.T).clamp(-1.0, 1.0)
    best, labels = cos.max(dim=-1)
    return labels, torch.rad2deg(torch.arccos(best))
