"""Structure families: compositional variants of one atomic model (CryoEngine's 452 classes).

Each variant removes a random subset of chains while keeping at least ``min_mass_fraction``
(70 %) of the parent's mass, then applies a random rigid-body motion (rotation about the chain's
centroid up to ``max_rotation_deg``, translation up to ``max_shift_angstrom``) to a random
fraction of the remaining chains. Variants are distinct by construction (no two share the same
set of removed chains unless the model has too few chains, in which case the perturbations
differ) and each carries a provenance record (parent, removed chains, per-chain motions, seed)
so the class can be regenerated exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cryoframe._errors import InputError
from cryoframe.geometry.rotations import axis_angle_to_matrix

__all__ = ["Variant", "chain_masses", "structure_family"]


@dataclass(frozen=True)
class Variant:
    """One member of a structure family: its atoms and how they were derived."""

    atoms: object  # cryoframe.io.structures.Atoms
    provenance: dict


def _subset(atoms, keep: np.ndarray, coords: np.ndarray | None = None):
    n = len(atoms)
    changes = {}
    for f in dataclasses.fields(atoms):
        v = getattr(atoms, f.name)
        if isinstance(v, np.ndarray) and v.shape[:1] == (n,):
            changes[f.name] = v[keep]
    if coords is not None:
        changes["coords_zyx_angstrom"] = coords[keep]
    return dataclasses.replace(atoms, **changes)


def chain_masses(atoms) -> dict[str, float]:
    """Mass (Da) of each chain, from gemmi's standard atomic weights."""
    import gemmi

    weights = {e: gemmi.Element(str(e)).weight for e in np.unique(atoms.elements)}
    w = np.array([weights[e] for e in atoms.elements]) * np.asarray(atoms.occupancies, float)
    return {str(c): float(w[atoms.chain_ids == c].sum()) for c in np.unique(atoms.chain_ids)}


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    import torch


    return axis_angle_to_matrix(torch.as_tensor(axis, dtype=torch.float64),
                                torch.tensor(angle_rad, dtype=torch.float64)).numpy()


def structure_family(
    atoms, n_variants: int, *, min_mass_fraction: float = 0.7, perturb_fraction: float = 0.5,
    max_rotation_deg: float = 5.0, max_shift_angstrom: float = 5.0, seed: int = 0,
    parent_name: str = "",
) -> list[Variant]:
    """Derive ``n_variants`` distinct compositional/conformational variants of ``atoms``.

    Parameters
    ----------
    atoms : Atoms
        Parent model (needs ``chain_ids``).
    n_variants : int
        Number of variants.
    min_mass_fraction : float
        Each variant keeps at least this fraction of the parent's mass.
    perturb_fraction : float
        Probability that a kept chain gets a rigid-body motion.
    max_rotation_deg, max_shift_angstrom : float
        Bounds of the uniform random rotation angle and translation length per chain.
    seed : int
        Seed; variant ``i`` depends only on ``(seed, i)``.
    parent_name : str
        Name of the parent stored in the provenance.

    Returns
    -------
    list of Variant
    """
    masses = chain_masses(atoms)
    chains = sorted(masses)
    total = sum(masses.values())
    if not chains:
        raise InputError("model has no chains", field="atoms")
    coords_all = np.asarray(atoms.coords_zyx_angstrom, dtype=np.float64)
    seen: set[tuple[str, ...]] = set()
    out = []
    for i in range(n_variants):
        rng = np.random.default_rng([seed, i, 404])
        removed: list[str] = []
        for _attempt in range(50):
            order = list(rng.permutation(chains))
            n_remove = int(rng.integers(0, len(chains)))
            removed, mass = [], total
            for c in order[:n_remove]:
                if mass - masses[c] >= min_mass_fraction * total:
                    removed.append(c)
                    mass -= masses[c]
            if tuple(sorted(removed)) not in seen or len(seen) >= 2 ** min(len(chains), 20):
                break
        seen.add(tuple(sorted(removed)))
        keep_chains = [c for c in chains if c not in removed]
        coords = coords_all.copy()
        motions = {}
        for c in keep_chains:
            if rng.random() >= perturb_fraction:
                continue
            sel = atoms.chain_ids == c
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            angle = np.deg2rad(rng.uniform(0, max_rotation_deg))
            d = rng.normal(size=3)
            shift = d / np.linalg.norm(d) * rng.uniform(0, max_shift_angstrom)
            centroid = coords[sel].mean(0)
            R = _rotation(axis, angle)
            coords[sel] = (coords[sel] - centroid) @ R.T + centroid + shift
            motions[c] = {"axis_zyx": axis.round(6).tolist(),
                          "angle_deg": float(np.rad2deg(angle)),
                          "shift_zyx_angstrom": shift.round(4).tolist()}
        keep = np.isin(atoms.chain_ids, keep_chains)
        prov = {"parent": parent_name or getattr(atoms, "source", ""), "variant": i,
                "seed": seed, "removed_chains": sorted(removed),
                "mass_fraction": float(sum(masses[c] for c in keep_chains) / total),
                "rigid_body_motions": motions}
        out.append(Variant(_subset(atoms, keep, coords), prov))
    return out
