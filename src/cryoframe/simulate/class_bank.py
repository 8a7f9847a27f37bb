"""Labelled class densities for encoder pretraining: bundled structures, families and assemblies.

Labels are free in simulation, so the encoder can be trained to tell many structures apart and
judged on structures it never saw (TomoTwin trains this way). The bank is built from bundled data
only, never from a benchmark class (:data:`BENCHMARK_CLASSES`), and keeps a disjoint set of
*development* classes (:data:`DEV_MAPS`) for model selection, so no checkpoint is chosen on the
benchmark's structures:

* every bundled 10 Å map outside SUB5 and the development set, one class each;
* CryoEngine structure families (:func:`cryoframe.simulate.families.structure_family`: chains
  removed / moved) of the bundled multi-chain atomic models, simulated at the resolution SUB5 uses
  (σ = 5 Å, ``resolution_angstrom = 10``);
* procedurally generated assemblies: two or three training maps, each turned by a random rotation,
  placed in contact along a random direction and summed — shapes no bundled map has, as many as
  asked for, each fixed by ``(seed, index)``.

All densities are normalised to unit maximum on their own cubic box at 10 Å/voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from cryoframe._errors import InputError
from cryoframe.data import structure_path
from cryoframe.io.structures import read_structure
from cryoframe.simulate.density import density_from_atoms, load_density
from cryoframe.simulate.families import structure_family

__all__ = ["BENCHMARK_CLASSES", "DEV_MAPS", "TRAIN_MAPS", "FAMILY_VARIANTS", "ClassBank",
           "build_class_bank", "build_dev_bank", "assembly_density"]

#: Classes of the benchmark suites (BENCHMARKS.md): never part of pretraining data.
BENCHMARK_CLASSES = frozenset({"7P6Z", "1WCM", "3CF3", "1QVR", "1BXN"})
#: Bundled maps held out of training for model selection (never trained on, never benchmarked).
DEV_MAPS: tuple[str, ...] = ("1F4A", "6PXM", "7N4Y", "6UTJ", "2UV8")
#: Bundled maps used as training classes (and as assembly parts).
TRAIN_MAPS: tuple[str, ...] = ("3IPM", "4CR2", "4V4R", "4V4R_50S", "4V7R", "4V94", "5MRC", "6QZP",
                               "8TUX", "3J9I", "4V4R_30S", "1U6G", "2CG9", "3D2F", "3H84", "3QM1")
#: Atomic models → number of family variants (each variant one class).
FAMILY_VARIANTS: dict[str, int] = {"3J9I": 16, "4V4R_30S": 16, "1U6G": 6, "2CG9": 4, "3D2F": 4,
                                   "3H84": 4, "3QM1": 4}


@dataclass
class ClassBank:
    """Class densities and their names (index = label)."""

    densities: list[torch.Tensor]  #: `(L_i, L_i, L_i)` float32, unit maximum
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


def _normalise(v: np.ndarray) -> torch.Tensor:
    v = np.clip(np.asarray(v, dtype=np.float32), 0, None)
    return torch.from_numpy(v / max(float(v.max()), 1e-12))


def _map(name: str, voxel_size_angstrom: float) -> np.ndarray:

    return np.asarray(load_density(name, voxel_size_angstrom=voxel_size_angstrom).data)


def _family_densities(parent: str, n: int, seed: int, voxel_size_angstrom: float):

    atoms = read_structure(structure_path(parent), waters=False)
    centre = np.asarray(atoms.coords_zyx_angstrom, dtype=np.float64).mean(0)
    ref = density_from_atoms(atoms.coords_zyx_angstrom, atoms.elements,
                             voxel_size_angstrom=voxel_size_angstrom, resolution_angstrom=10.0)
    box = int(ref.data.shape[0])
    out = []
    for i, var in enumerate(structure_family(atoms, n, seed=seed, parent_name=parent)):
        a = var.atoms
        d = density_from_atoms(a.coords_zyx_angstrom, a.elements,
                               occupancies=getattr(a, "occupancies", None),
                               voxel_size_angstrom=voxel_size_angstrom, box_size_px=box,
                               centre_zyx_angstrom=centre, resolution_angstrom=10.0)
        out.append((f"{parent}/v{i}", _normalise(d.data)))
    return out


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _rotate(v: np.ndarray, R: np.ndarray, out_size: int) -> np.ndarray:
    """Rotate ``v`` about its centre into an ``out_size³`` box centred the same way (trilinear)."""
    c_in = np.array(v.shape, dtype=float) // 2
    c_out = np.full(3, out_size // 2, dtype=float)
    # out(x) = v(Rᵀ (x − c_out) + c_in)
    return ndimage.affine_transform(v, R.T, offset=c_in - R.T @ c_out,
                                    output_shape=(out_size,) * 3, order=1)


def _radius_px(v: np.ndarray) -> float:
    idx = np.argwhere(v > 0.1 * v.max())
    c = idx.mean(0)
    return float(np.percentile(np.linalg.norm(idx - c, axis=1), 90))


def assembly_density(parts: list[np.ndarray], seed: int, box_px: int = 48) -> np.ndarray:
    """Sum of ``parts`` in random orientations, each placed in contact with the growing assembly.

    Part ``j ≥ 1`` is moved from the assembly's centre of mass along a random direction by the sum
    of the two radii (90th percentile of the voxel distances above 10 % of the peak) times a
    contact factor in [0.6, 0.85]; the result is recentred on its centre of mass.
    """
    rng = np.random.default_rng([seed, 909])
    out = np.zeros((box_px,) * 3, dtype=np.float64)
    for j, p in enumerate(parts):
        p = _rotate(p / max(p.max(), 1e-12), _random_rotation(rng), box_px)
        if j > 0:
            com = np.array(ndimage.center_of_mass(out))
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            dist = (_radius_px(out) + _radius_px(p)) * rng.uniform(0.6, 0.85)
            target = com + d * dist
            p = ndimage.shift(p, target - box_px // 2, order=1)
        out += p
    shift = box_px // 2 - np.array(ndimage.center_of_mass(out))
    return ndimage.shift(out, shift, order=1)


def build_class_bank(n_assemblies: int = 64, seed: int = 0, voxel_size_angstrom: float = 10.0,
                     families: dict[str, int] | None = None,
                     maps: tuple[str, ...] = TRAIN_MAPS) -> ClassBank:
    """The training classes (module docstring): maps, families, then assemblies.

    Raises
    ------
    InputError
        If a benchmark or development class is requested.
    """
    families = dict(FAMILY_VARIANTS if families is None else families)
    bad = (BENCHMARK_CLASSES | set(DEV_MAPS)) & {s.upper() for s in [*families, *maps]}
    if bad:
        raise InputError(f"classes {sorted(bad)} are held out of pretraining",
                         field="structures", expected="structures outside SUB5 and DEV_MAPS")
    names, dens = [], []
    raw_maps = {}
    for m in maps:
        raw_maps[m] = _map(m, voxel_size_angstrom)
        names.append(m)
        dens.append(_normalise(raw_maps[m]))
    for parent, n in families.items():
        for name, d in _family_densities(parent, n, seed, voxel_size_angstrom):
            names.append(name)
            dens.append(d)
    # assembly parts: maps small enough that two or three still fit a 32³ box mostly
    small = [m for m in maps if _radius_px(raw_maps[m]) <= 9.0]
    rng = np.random.default_rng([seed, 808])
    for i in range(n_assemblies):
        k = 2 if rng.random() < 0.6 else 3
        pick = [small[j] for j in rng.choice(len(small), size=k, replace=True)]
        vol = assembly_density([raw_maps[p] for p in pick], seed=seed * 100003 + i)
        names.append("asm:" + "+".join(pick) + f"#{i}")
        dens.append(_normalise(vol))
    return ClassBank(dens, names)


def build_dev_bank(voxel_size_angstrom: float = 10.0) -> ClassBank:
    """The held-out development classes (:data:`DEV_MAPS`) for model selection."""
    return ClassBank([_normalise(_map(m, voxel_size_angstrom)) for m in DEV_MAPS], list(DEV_MAPS))
