"""Training data for 3D pretraining: a small source protocol and a streaming batch loader.

A *source* is anything with ``__len__`` and ``get(indices) -> dict`` returning clean volumes and
their labels::

    {"clean": (n, L, L, L) float32 Tensor, "class_id": (n,) int64 Tensor,
     "rotation": (n, 3, 3) float32 Tensor, "index": (n,) int64 Tensor}

Implementations: :class:`InMemorySource` (tests, small sets), :class:`StoreSource` (the
CryoEngine zarr + Parquet store, :class:`cryoframe.io.store.SubtomoStore`, read row by row
without loading the store) and :class:`FastPathSource` (subtomograms simulated on the fly by
CryoEngine's fast path, deterministic in ``(seed, index)``, nothing stored at all).
:func:`iterate_batches` shuffles indices per epoch with a seeded generator and gives each
data-parallel rank its own slice, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.data import STRUCTURES, structure_path
from cryoframe.geometry.rotations import random_rotations
from cryoframe.io.store import SubtomoStore
from cryoframe.io.structures import read_structure
from cryoframe.simulate.density import density_from_atoms, load_density
from cryoframe.simulate.families import structure_family
from cryoframe.simulate.fastpath import FastSubtomogramSimulator

__all__ = ["SubtomoSource", "InMemorySource", "StoreSource", "FastPathSource", "iterate_batches",
           "batches_per_epoch", "pretraining_densities", "BENCHMARK_CLASSES"]


@runtime_checkable
class SubtomoSource(Protocol):
    """Random access to clean subtomograms + labels (see module docstring)."""

    def __len__(self) -> int: ...

    def get(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Clean volumes ``"clean"`` `(B, L, L, L)` and labels of the rows ``indices``."""
        ...


class InMemorySource:
    """Volumes held in memory.

    Parameters
    ----------
    clean : array-like
        `(N, L, L, L)` clean volumes.
    class_id : array-like, optional
        `(N,)` labels (default 0).
    rotation : array-like, optional
        `(N, 3, 3)` poses (default identity).
    """

    def __init__(self, clean, class_id=None, rotation=None) -> None:
        self.clean = torch.as_tensor(np.asarray(clean), dtype=torch.float32)
        if self.clean.ndim != 4:
            raise InputError("volumes must be (N, L, L, L)", field="clean",
                             expected="a 4D array")
        n = self.clean.shape[0]
        self.class_id = (torch.zeros(n, dtype=torch.long) if class_id is None
                         else torch.as_tensor(np.asarray(class_id), dtype=torch.long))
        self.rotation = (torch.eye(3).expand(n, 3, 3) if rotation is None
                         else torch.as_tensor(np.asarray(rotation), dtype=torch.float32))

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def get(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Rows ``indices`` (see module docstring)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return {"clean": self.clean[idx], "class_id": self.class_id[idx],
                "rotation": self.rotation[idx], "index": idx}


class StoreSource:
    """Rows of a CryoEngine store (done units only), read lazily from zarr.

    Parameters
    ----------
    path : str or Path
        Store directory (``store.zarr``).
    """

    def __init__(self, path: str | Path) -> None:

        self.store = SubtomoStore(path)
        table = self.store.read_table()
        if len(table) == 0:
            raise InputError("store has no finished rows", file=path,
                             expected="a store written by `cryoframe simulate`")
        self.rows = table["index"].to_numpy().astype(np.int64)
        self.class_id = (table["class_id"].to_numpy().astype(np.int64)
                         if "class_id" in table else np.zeros(len(table), np.int64))
        names = [f"rot_{i}{j}" for i in range(3) for j in range(3)]
        if all(n in table for n in names):
            self.rotation = table[names].to_numpy(np.float32).reshape(-1, 3, 3)
        else:
            self.rotation = np.broadcast_to(np.eye(3, dtype=np.float32), (len(table), 3, 3))
        self.volumes = self.store.group["volumes"]

    def __len__(self) -> int:
        return int(len(self.rows))

    def get(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Rows ``indices`` (positions among the finished rows)."""
        pos = np.asarray(indices, dtype=np.int64)
        order = np.argsort(pos)
        rows = self.rows[pos[order]]
        vols = np.asarray(self.volumes.get_orthogonal_selection((rows,)), dtype=np.float32)
        out = np.empty_like(vols)
        out[order] = vols
        return {"clean": torch.from_numpy(out), "class_id": torch.from_numpy(self.class_id[pos]),
                "rotation": torch.from_numpy(np.ascontiguousarray(self.rotation[pos])),
                "index": torch.from_numpy(self.rows[pos])}


class FastPathSource:
    """Subtomograms simulated on demand by CryoEngine's fast path (nothing stored).

    Row ``i`` is class ``i % n_classes`` at a pose and sub-voxel offset drawn from a generator
    seeded by ``(seed, i)``, so every row is reproducible in any order and on any rank.

    Parameters
    ----------
    densities : sequence
        One `(L, L, L)` density (Tensor or ``DensityMap``) per class.
    n_rows : int
        Nominal dataset length (rows are generated, so this only sets the epoch size).
    seed : int
        Dataset seed.
    box_size_px : int
        Output box.
    offset_max_px : float
        Uniform picking offset bound (voxels).
    tilt_range_deg : tuple of float
        Missing-wedge tilt range.
    """

    def __init__(self, densities: Sequence, n_rows: int, seed: int = 0, box_size_px: int = 32,
                 offset_max_px: float = 1.0,
                 tilt_range_deg: tuple[float, float] = (-60.0, 60.0)) -> None:

        self.sim = FastSubtomogramSimulator(list(densities), box_size_px, tilt_range_deg[0],
                                            tilt_range_deg[1])
        self.n_classes = len(densities)
        self.n_rows = int(n_rows)
        self.seed = int(seed)
        self.offset_max_px = float(offset_max_px)

    def __len__(self) -> int:
        return self.n_rows

    def poses(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """`(n, 3, 3)` rotations and `(n, 3)` offsets of the rows (deterministic)."""
        rots, offs = [], []
        for i in indices:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
            rots.append(random_rotations(1, generator=g)[0])
            offs.append((torch.rand(3, generator=g) * 2 - 1) * self.offset_max_px)
        return torch.stack(rots), torch.stack(offs)

    def get(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Simulate rows ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        cls = idx % self.n_classes
        rots, offs = self.poses(idx)
        clean = self.sim.simulate(cls, rots, offs)
        return {"clean": clean, "class_id": torch.from_numpy(cls), "rotation": rots,
                "index": torch.from_numpy(idx)}


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Full batches each rank gets per epoch (the remainder is dropped)."""
    return (n // world_size) // batch_size


def iterate_batches(source: SubtomoSource, batch_size: int, seed: int, start_step: int = 0,
                    rank: int = 0, world_size: int = 1,
                    exclude: Sequence[int] = ()) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """Endless ``(step, batch)`` stream, shuffled per epoch, sharded over ranks, resumable.

    Parameters
    ----------
    source : SubtomoSource
        Data.
    batch_size : int
        Per-rank batch size.
    seed : int
        Shuffling seed (epoch ``e`` uses permutation ``seed + e``).
    start_step : int
        First step to yield (resuming skips the earlier ones without reading them).
    rank, world_size : int
        Data-parallel position.
    exclude : sequence of int
        Rows never used (e.g. the k-NN monitor's held-out slice).
    """
    pool = np.setdiff1d(np.arange(len(source)), np.asarray(exclude, dtype=np.int64))
    per_epoch = batches_per_epoch(len(pool), batch_size, world_size)
    if per_epoch == 0:
        raise InputError(f"{len(pool)} rows cannot fill one batch of {batch_size} on "
                         f"{world_size} rank(s)", field="batch_size")
    step = start_step
    while True:
        epoch, within = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(pool)
        mine = perm[rank::world_size]
        rows = mine[within * batch_size:(within + 1) * batch_size]
        yield step, source.get(rows)
        step += 1


#: Classes of the benchmark suites (BENCHMARKS.md): never part of pretraining data.
BENCHMARK_CLASSES = frozenset({"7P6Z", "1WCM", "3CF3", "1QVR", "1BXN"})


def pretraining_densities(families: dict[str, int], singles: Sequence[str], seed: int = 0,
                          voxel_size_angstrom: float = 10.0) -> tuple[list[Tensor], list[str]]:
    """Class densities for pretraining: CryoEngine structure families plus single structures.

    Parameters
    ----------
    families : dict
        Parent ID → number of variants (:func:`cryoframe.simulate.families.structure_family`,
        chains removed / perturbed); each variant is one class, on its parent's box and centre.
    singles : sequence of str
        Further structure IDs, one class each.
    seed : int
        Family seed.
    voxel_size_angstrom : float
        Voxel size.

    Returns
    -------
    densities : list of Tensor
        `(L_i, L_i, L_i)` maps.
    names : list of str
        Class names (``"3J9I/v3"`` for variant 3 of 3J9I).

    Raises
    ------
    InputError
        If a benchmark class (:data:`BENCHMARK_CLASSES`) is requested.
    """
    bad = BENCHMARK_CLASSES & {s.upper() for s in [*families, *singles]}
    if bad:
        raise InputError(f"benchmark classes {sorted(bad)} must not be used for pretraining",
                         field="structures", expected="structures outside the benchmark sets")
    dens: list[Tensor] = []
    names: list[str] = []
    for parent, n_var in families.items():
        path = structure_path(parent) if parent.upper() in STRUCTURES else Path(parent)
        atoms = read_structure(path, waters=False)
        ref = density_from_atoms(atoms.coords_zyx_angstrom, atoms.elements,
                                 voxel_size_angstrom=voxel_size_angstrom)
        centre = np.asarray(atoms.coords_zyx_angstrom, dtype=np.float64).mean(0)
        box = int(ref.data.shape[0])
        for i, var in enumerate(structure_family(atoms, n_var, seed=seed, parent_name=parent)):
            a = var.atoms
            d = density_from_atoms(a.coords_zyx_angstrom, a.elements,
                                   occupancies=getattr(a, "occupancies", None),
                                   voxel_size_angstrom=voxel_size_angstrom, box_size_px=box,
                                   centre_zyx_angstrom=centre)
            dens.append(torch.as_tensor(np.asarray(d.data), dtype=torch.float32))
            names.append(f"{parent}/v{i}")
    for s in singles:
        d = load_density(s, voxel_size_angstrom=voxel_size_angstrom)
        dens.append(torch.as_tensor(np.asarray(d.data), dtype=torch.float32))
        names.append(str(s))
    return dens, names
