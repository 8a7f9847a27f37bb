"""CryoEngine orchestration: densities → (tomograms →) subtomogram store, resumable and shardable.

Two paths fill a :class:`cryoframe.io.store.SubtomoStore` of clean 32³ subtomograms:

* ``full``: per work unit, virtual samples (Poisson-disk scene, uniform classes and poses) are
  imaged as tilt series, aligned, reconstructed by WBP and boxed (App. C.1) until the unit's
  rows are filled. With ``tomogram.noise_stage = "tilt"`` a unit-variance white-noise tilt series
  is reconstructed with the same alignment and stored as the ``noise`` array, so noisy copies at
  any SNR are ``S + αN`` (:func:`cryoframe.simulate.noise.combine_signal_noise`);
* ``fast``: per-particle Fourier-space simulation (:mod:`cryoframe.simulate.fastpath`).

Noise at the subtomogram level is never stored: :func:`noisy_batches` adds it on the fly with
the seeded, exactly calibrated generator of :mod:`cryoframe.simulate.noise`. Row ``i`` of a
store depends only on ``(seed, unit of i)``, so shards and resumed runs are reproducible.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.ctf import ctf_2d
from cryoframe.geometry.rotations import random_rotations
from cryoframe.io.store import SubtomoStore
from cryoframe.io.subtomo_table import make_subtomo_table
from cryoframe.simulate.align_tilts import TiltAlignment, align_translations
from cryoframe.simulate.config import DensityConfig, SubtomogramDatasetConfig, TomogramConfig
from cryoframe.simulate.density import load_density
from cryoframe.simulate.extract import extract_subtomograms
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import add_noise, combine_signal_noise
from cryoframe.simulate.reconstruct import weighted_backprojection
from cryoframe.simulate.scene import make_scene
from cryoframe.simulate.tilt_axis import correct_tilt_axis, refine_tilt_axis
from cryoframe.simulate.tiltseries import simulate_tilt_series, tilt_angles_deg

__all__ = ["build_densities", "TomogramResult", "simulate_tomogram", "simulate_subtomograms",
           "simulate_unit", "noisy_batches", "run_units_dask"]


def build_densities(sources: Iterable, density_cfg=None) -> list:
    """One :class:`~cryoframe.simulate.density.DensityMap` per source (ID, model or map)."""
    cfg = density_cfg or DensityConfig()
    out = []
    for s in sources:
        if hasattr(s, "data"):
            out.append(s)
            continue
        out.append(load_density(s, voxel_size_angstrom=cfg.voxel_size_angstrom,
                                threshold_fraction=cfg.threshold_fraction,
                                fine_voxel_angstrom=cfg.fine_voxel_angstrom,
                                resolution_angstrom=cfg.resolution_angstrom))
    return out


@dataclass
class TomogramResult:
    """Everything produced for one virtual sample."""

    scene: object
    tilt_series: object
    alignment: object
    tomogram: torch.Tensor
    noise_tomogram: torch.Tensor | None
    extraction: object
    timings_s: dict
    tilt_axis: object = None  # TiltAxisFit when cfg.refine_tilt_axis, else None


def simulate_tomogram(densities, cfg: TomogramConfig | None = None, seed: int = 0,
                      voxel_size_angstrom: float = 10.0) -> TomogramResult:
    """Scene → tilt series → alignment → WBP → extraction for one virtual sample."""
    cfg = cfg or TomogramConfig()
    t = {}
    t0 = time.perf_counter()
    scene = make_scene(tuple(cfg.shape_zyx_px), len(densities), n_particles=cfg.n_particles,
                       occupancy=cfg.occupancy, box_size_px=cfg.box_size_px,
                       margin_px=cfg.margin_px, voxel_size_angstrom=voxel_size_angstrom,
                       seed=seed)
    t["scene"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts = simulate_tilt_series(
        scene, densities, tilt_min_deg=cfg.tilt_min_deg, tilt_max_deg=cfg.tilt_max_deg,
        tilt_step_deg=cfg.tilt_step_deg, scheme=cfg.scheme, drift_std_px=cfg.drift_std_px,
        ctf=cfg.ctf, defocus_range_angstrom=(cfg.defocus_min_angstrom, cfg.defocus_max_angstrom),
        voltage_kv=cfg.voltage_kv, cs_mm=cfg.cs_mm, amplitude_contrast=cfg.amplitude_contrast,
        dose_per_tilt_e_per_a2=cfg.dose_per_tilt_e_per_a2, seed=seed)
    t["tilt_series"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.align and cfg.drift_std_px > 0:
        al = align_translations(ts.images, ts.tilts_deg)
    else:

        al = TiltAlignment(np.zeros((len(ts.tilts_deg), 2)), ts.images)
    images = al.aligned
    axis_fit = None
    if cfg.refine_tilt_axis:

        axis_fit = refine_tilt_axis(images, ts.tilts_deg)
        images = correct_tilt_axis(images, axis_fit.axis_angle_deg, axis_fit.axis_offset_px)
    t["align"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctf_sign = None
    if cfg.ctf:

        H, W = images.shape[-2:]
        ctf_sign = torch.stack([torch.sign(torch.as_tensor(ctf_2d(
            (H, W), voxel_size_angstrom, float(d), voltage_kv=cfg.voltage_kv, cs_mm=cfg.cs_mm,
            amplitude_contrast=cfg.amplitude_contrast, rfft=True))) for d in ts.defocus_angstrom])
    shape = tuple(cfg.shape_zyx_px)
    tomo = weighted_backprojection(images, ts.tilts_deg, shape,
                                   cosine_weighting=cfg.cosine_weighting, ctf_sign=ctf_sign)
    noise_tomo = None
    if cfg.noise_stage == "tilt":
        gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, 505]).integers(2**62)))
        noise = torch.randn(images.shape, generator=gen)
        noise_tomo = weighted_backprojection(noise, ts.tilts_deg, shape,
                                             cosine_weighting=cfg.cosine_weighting,
                                             ctf_sign=ctf_sign)
    t["reconstruct"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ex = extract_subtomograms(
        tomo, scene, densities, box_size_px=cfg.box_size_px, offset_max_px=cfg.offset_max_px,
        min_separation_px=cfg.min_separation_px, mask_threshold=cfg.mask_threshold, seed=seed,
        extra_tomograms=None if noise_tomo is None else {"noise": noise_tomo})
    t["extract"] = time.perf_counter() - t0
    _ = tilt_angles_deg  # geometry of the series is recorded in ts
    return TomogramResult(scene, ts, al, tomo, noise_tomo, ex, t, axis_fit)


def _canonical_table(ext_table, voxel: float, box: int, tomo_name: str, class_names):

    start = ext_table[["box_start_z_px", "box_start_y_px", "box_start_x_px"]].to_numpy(float)
    coords = (start + box // 2) * voxel
    off = ext_table[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy(float)
    R = ext_table[[f"R{i}{j}" for i in range(3) for j in range(3)]].to_numpy().reshape(-1, 3, 3)
    df = make_subtomo_table(coords, R, off * voxel, [tomo_name] * len(ext_table),
                            ext_table["class_id"].to_numpy(), ext_table["particle"].to_numpy() + 1)
    df["class_name"] = [class_names[int(c)] for c in ext_table["class_id"]]
    for i, a in enumerate("zyx"):
        df[f"offset_{a}_px"] = off[:, i]
    return df


_FAST_CACHE: dict = {}


def _fast_simulator(densities, cfg: SubtomogramDatasetConfig):
    """One :class:`FastSubtomogramSimulator` per (densities, fast config) within a process."""
    key = (tuple(id(d) for d in densities), cfg.fast, cfg.tomogram.box_size_px,
           cfg.density.voxel_size_angstrom)
    if key not in _FAST_CACHE:
        _FAST_CACHE.clear()
        f = cfg.fast
        _FAST_CACHE[key] = FastSubtomogramSimulator(
            densities, cfg.tomogram.box_size_px, f.tilt_min_deg, f.tilt_max_deg, f.wbp_weighting,
            f.cosine_weighting, f.b_factor_angstrom2, cfg.density.voxel_size_angstrom)
    return _FAST_CACHE[key]


def simulate_unit(store, unit: int, densities, cfg: SubtomogramDatasetConfig,
                  class_names: list[str]) -> None:
    """Fill one work unit of ``store`` (deterministic in ``(cfg.seed, unit)``) and mark it done."""
    rows = store.unit_rows(unit)
    n = len(rows)
    L = cfg.tomogram.box_size_px
    voxel = cfg.density.voxel_size_angstrom
    if cfg.path == "fast":

        rng = np.random.default_rng([cfg.seed, unit, 606])
        cls = np.asarray(list(rows)) // cfg.n_per_class
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        R = random_rotations(n, generator=gen, dtype=torch.float64).numpy()
        off = rng.uniform(-cfg.fast.offset_max_px, cfg.fast.offset_max_px, size=(n, 3))
        sim = _fast_simulator(densities, cfg)
        vols = sim.simulate(cls, R, off)
        import pandas as pd

        t = pd.DataFrame({"class_id": cls, "particle": np.arange(n),
                          **{f"box_start_{a}_px": np.zeros(n, int) for a in "zyx"},
                          **{f"offset_{a}_px": off[:, i] for i, a in enumerate("zyx")},
                          **{f"R{i}{j}": R[:, i, j] for i in range(3) for j in range(3)}})
        gt = sim.simulate(cls, R, off, ground_truth=True)
        peak = gt.reshape(n, -1).amax(1).clamp_min(1e-12)
        masks = gt > cfg.tomogram.mask_threshold * peak[:, None, None, None]
        df = _canonical_table(t, voxel, L, f"fast_{unit:06d}", class_names)
        df["coord_z_angstrom"] = df["coord_y_angstrom"] = df["coord_x_angstrom"] = 0.0
        store.write_unit(unit, {"volumes": vols.numpy(), "masks": masks.numpy()}, df)
        return
    # full path: tomograms until the unit is filled; classes uniform within each tomogram
    import pandas as pd

    vols, masks, noise, tables = [], [], [], []
    got, attempt = 0, 0
    while got < n:
        seed = int(np.random.default_rng([cfg.seed, unit, attempt, 707]).integers(2**31))
        res = simulate_tomogram(densities, cfg.tomogram, seed, voxel)
        ex = res.extraction
        take = min(n - got, len(ex.table))
        vols.append(ex.volumes[:take])
        masks.append(ex.masks[:take])
        if "noise" in ex.extra:
            noise.append(ex.extra["noise"][:take])
        tables.append(_canonical_table(ex.table.iloc[:take], voxel, L,
                                       f"tomo_{unit:06d}_{attempt}", class_names))
        got += take
        attempt += 1
        if attempt > 50 and got == 0:
            raise InputError("tomograms yield no extractable particles", field="tomogram",
                             expected="a larger occupancy or tomogram")
    arrays = {"volumes": torch.cat(vols).numpy(), "masks": torch.cat(masks).numpy()}
    if noise:
        arrays["noise"] = torch.cat(noise).numpy()
    store.write_unit(unit, arrays, pd.concat(tables, ignore_index=True))


def simulate_subtomograms(
    cfg: SubtomogramDatasetConfig, out: str | Path, *, shard: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], None] | None = None, max_units: int | None = None,
    dask_client=None,
):
    """Fill (or resume) the subtomogram store at ``out`` for job ``shard = (k, n)``.

    Returns
    -------
    SubtomoStore
    """
    densities = build_densities(cfg.structures, cfg.density)
    names = [str(s) for s in cfg.structures]
    arrays = {"volumes": "float32", "masks": "uint8"}
    if cfg.path == "full" and cfg.tomogram.noise_stage == "tilt":
        arrays["noise"] = "float32"
    store = SubtomoStore.create(
        out, len(names) * cfg.n_per_class, cfg.tomogram.box_size_px, unit_size=cfg.unit_size,
        arrays=arrays, attrs={"config": json.loads(cfg.model_dump_json()), "class_names": names,
                              "voxel_size_angstrom": cfg.density.voxel_size_angstrom})
    units = store.pending_units(shard)
    if max_units is not None:
        units = units[:max_units]
    if dask_client is not None:
        run_units_dask(dask_client, store.path, units, densities, cfg, names)
    else:
        for i, u in enumerate(units):
            simulate_unit(store, u, densities, cfg, names)
            if progress:
                progress(i + 1, len(units))
    return store


def _dask_task(path: str, unit: int, densities, cfg, names) -> int:
    from cryoframe.io.store import SubtomoStore

    simulate_unit(SubtomoStore(path), unit, densities, cfg, names)
    return unit


def run_units_dask(client, store_path, units, densities, cfg, names) -> list[int]:
    """Run units as Dask tasks (each writes its own shard; the store stays consistent)."""
    futures = [client.submit(_dask_task, str(store_path), int(u), densities, cfg, names,
                             pure=False) for u in units]
    return [int(f.result()) for f in futures]


def noisy_batches(store, snr: float, seed: int | None = None, batch_size: int = 64,
                  exact: bool = True):
    """Stream ``store`` with noise at ``snr`` added on the fly (module docstring)."""
    seed = int(store.attrs.get("config", {}).get("seed", 0)) if seed is None else seed
    has_noise = "noise" in store.attrs.get("arrays", {})
    names = ("volumes", "noise") if has_noise else ("volumes",)

    def transform(batch: dict) -> dict:
        clean = torch.as_tensor(batch["volumes"])
        if has_noise:
            noisy = combine_signal_noise(clean, torch.as_tensor(batch["noise"]), snr)
        else:
            noisy = add_noise(clean, snr, seed, batch["index"], exact=exact)
        return {**batch, "clean": clean, "volumes": noisy}

    return store.iter_batches(batch_size, names, transform)
