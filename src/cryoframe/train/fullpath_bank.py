"""Full tilt-series path boxes of the training classes: a labelled store for supervised training.

The fast tilt-matched source (:class:`~cryoframe.train.labelled_source.TiltMatchedSource`)
matches the full path's CTF and noise spectrum, but not everything the full path does: crowded
Poisson-disk scenes with whatever neighbours fall in the box, tilt drift and its alignment,
per-tilt defocus with phase flipping, a sub-voxel picking error, and an SNR measured on the box.
Measured on the development classes (:data:`~cryoframe.simulate.class_bank.DEV_MAPS`, never
trained on), an encoder trained on the fast source alone loses 21 points of linear-probe
accuracy going from its own generator to the full path at SNR 0.1 (98.0 → 77.3 %) while the
rotation-invariant features lose 12 (92.8 → 80.6 %): a domain gap of the generator.

This module simulates the *same* class bank (maps, family variants and assemblies; no SUB5 and
no development class) through :func:`cryoframe.simulate.engine.simulate_unit`, the full path of
the benchmarks, with the tomogram settings of SUB5
(:func:`cryoframe.simulate.config.benchmark_tomogram_config`: −60…+60° in 2° steps, per-tilt CTF
3–6 µm underfocus, tilt-stage noise reconstructed alongside, ≤ 1 voxel picking error). Each row stores the reconstructed signal part ``S`` and a
unit tilt-noise part ``N``, so the SNR is chosen per sample at training time
(:class:`FullPathBankSource`). The store is resumable like every subtomogram store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoframe.geometry.transforms import wedge_preserving_rotations
from cryoframe.io.store import SubtomoStore
from cryoframe.simulate.class_bank import ClassBank
from cryoframe.simulate.config import (
    DensityConfig,
    SubtomogramDatasetConfig,
    benchmark_tomogram_config,
)
from cryoframe.simulate.density import DensityMap
from cryoframe.simulate.engine import simulate_unit
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.train.augment3d import standardize

__all__ = ["fullpath_bank_config", "build_fullpath_bank_store", "FullPathBankSource"]

_VOXEL_ANGSTROM = 10.0


def fullpath_bank_config(bank: ClassBank, n_per_class: int, seed: int,
                         shape_zyx_px: tuple[int, int, int] = (160, 400, 400)
                         ) -> SubtomogramDatasetConfig:
    """Full-path dataset settings of a class bank (SUB5's tomogram physics, its own seed)."""
    tomo = benchmark_tomogram_config(shape_zyx_px)
    return SubtomogramDatasetConfig(
        structures=list(bank.names), n_per_class=n_per_class, path="full", snrs=[100.0],
        seed=seed, unit_size=128,
        density=DensityConfig(voxel_size_angstrom=_VOXEL_ANGSTROM, resolution_angstrom=10.0),
        tomogram=tomo)


def _density_maps(bank: ClassBank) -> list[DensityMap]:
    return [DensityMap(np.ascontiguousarray(d.numpy(), dtype=np.float32), _VOXEL_ANGSTROM,
                       np.full(3, np.nan), {"source": "class bank", "name": n})
            for d, n in zip(bank.densities, bank.names)]


def build_fullpath_bank_store(bank: ClassBank, out: str | Path, n_per_class: int, seed: int,
                              progress=None, classes_per_unit: int = 8,
                              shape_zyx_px: tuple[int, int, int] = (160, 400, 400),
                              shard: tuple[int, int] = (0, 1)) -> SubtomoStore:
    """Simulate (or resume) the full-path store of ``bank`` at ``out``.

    Each work unit (one or more tomograms) holds ``classes_per_unit`` classes drawn from the
    bank by ``(seed, unit)``, uniformly per particle: the tilt-series projector prepares every
    class of a tomogram (a padded 3D FFT each), so 134 classes per tomogram cost 50 s a unit
    against about 10 s for 8. Class counts are therefore only approximately ``n_per_class``;
    the row's ``class_name`` names its bank class (``class_id`` indexes the unit's subset).
    ``shard = (k, n)`` fills the ``k``-th of ``n`` interleaved parts (parallel processes).
    """
    cfg = fullpath_bank_config(bank, n_per_class, seed, shape_zyx_px)
    store = SubtomoStore.create(
        out, len(bank) * n_per_class, 32, unit_size=cfg.unit_size,
        arrays={"volumes": "float32", "masks": "uint8", "noise": "float32"},
        attrs={"config": cfg.model_dump(mode="json"), "class_names": list(bank.names),
               "voxel_size_angstrom": _VOXEL_ANGSTROM})
    units = store.pending_units(shard)
    dens = _density_maps(bank)
    k = min(int(classes_per_unit), len(bank))
    for i, u in enumerate(units):
        pick = np.sort(np.random.default_rng([seed, u, 313]).choice(len(bank), k, replace=False))
        simulate_unit(store, u, [dens[j] for j in pick], cfg, [bank.names[j] for j in pick])
        if progress is not None:
            progress(i + 1, len(units))
    return store


class FullPathBankSource:
    """Labelled batches from a full-path bank store, SNR per sample, wedge-preserving turns.

    The signal and noise parts are held in memory (float32; 13,400 rows of 32³ ≈ 3.5 GB for
    both). Rows and turns are functions of ``(seed, step)``, so batches are reproducible.
    """

    def __init__(self, store: SubtomoStore | str | Path, seed: int = 0) -> None:
        st = store if isinstance(store, SubtomoStore) else SubtomoStore.open(store)
        table = st.read_table()
        n = len(table)
        self.signal = torch.from_numpy(np.array(st.group["volumes"][:n], dtype=np.float32))
        self.noise = torch.from_numpy(np.array(st.group["noise"][:n], dtype=np.float32))
        self.class_names = list(st.group.attrs["class_names"])
        index = {name: i for i, name in enumerate(self.class_names)}
        self.labels = torch.as_tensor([index[str(c)] for c in table["class_name"]],
                                      dtype=torch.int64)
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, step: int, n: int, snrs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``n`` standardised boxes at the given per-sample ``snrs`` and their labels."""
        gen = torch.Generator().manual_seed(self.seed * 7_919 + int(step) * 104_729 + 17)
        idx = torch.randint(0, len(self), (n,), generator=gen)
        turn = torch.randint(0, 4, (n,), generator=gen)
        vols = combine_signal_noise(self.signal[idx], self.noise[idx], snrs)  # one SNR per box
        turned = wedge_preserving_rotations(vols)
        vols = torch.stack([turned[int(k)][j] for j, k in enumerate(turn)])
        return {"volumes": standardize(vols), "labels": self.labels[idx]}
