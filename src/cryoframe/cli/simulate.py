"""``cryoframe simulate {structures,tomograms,subtomograms,particles}`` (CryoEngine).

Each subcommand: YAML config (optional) → flag overrides → validated frozen config → one
library call; the resolved config (with version and argv) is written next to the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cryoframe._atomic import atomic_write_text
from cryoframe._record import config_record_path, write_run_record, write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.cli import particles as particles_cli
from cryoframe.data import STRUCTURES, structure_path
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import write_particles
from cryoframe.io.store import parse_shard
from cryoframe.io.structures import read_structure
from cryoframe.io.subtomo_table import subtomo_to_relion
from cryoframe.simulate.density import density_from_atoms, load_density, write_density
from cryoframe.simulate.engine import (
    _canonical_table,
    build_densities,
    noisy_batches,
    simulate_subtomograms,
    simulate_tomogram,
)
from cryoframe.simulate.families import structure_family

console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def sim_structures(
    sources: list[str] = typer.Argument(..., help="Bundled IDs (3J9I), PDB/mmCIF or MRC."),
    out: Path = typer.Option(..., "--out", help="Output folder for the MRC maps."),
    config: Path = opt.config("DensityConfig"),
    voxel_size_angstrom: float = opt.pixel_size(
        help="Voxel size of the maps in Å (default from DensityConfig)."),
    voxel_size_alias: float = opt.pixel_size_alias("--voxel-size"),
    resolution_angstrom: float = typer.Option(None, "--resolution", help="Resolution of the density maps in Å (default from DensityConfig)."),
    family: int = typer.Option(0, "--family", help="Also derive N compositional variants."),
    seed: int = opt.seed(),
) -> None:
    """Atomic models → density maps (+ structure-family variants with provenance)."""
    from cryoframe.simulate.config import DensityConfig, load_config

    cfg = load_config(DensityConfig, config,
                      voxel_size_angstrom=opt.merge(voxel_size_angstrom, voxel_size_alias),
                      resolution_angstrom=resolution_angstrom)
    out.mkdir(parents=True, exist_ok=True)
    _per_run_record(out, cfg)
    kw = {"voxel_size_angstrom": cfg.voxel_size_angstrom,
          "fine_voxel_angstrom": cfg.fine_voxel_angstrom,
          "resolution_angstrom": cfg.resolution_angstrom,
          "threshold_fraction": cfg.threshold_fraction}
    provenance = {}
    with _progress() as prog:
        task = prog.add_task("densities", total=len(sources) * (1 + family))
        for src in sources:
            name = Path(str(src)).name.split(".")[0].upper()
            d = load_density(src, **kw)
            write_density(out / f"{name}.mrc", d)
            provenance[f"{name}.mrc"] = d.provenance
            prog.advance(task)
            if family:

                path = structure_path(src) if str(src).upper() in STRUCTURES else Path(src)
                atoms = read_structure(path, waters=False)
                for v in structure_family(atoms, family, seed=seed, parent_name=name):
                    i = v.provenance["variant"]
                    dv = density_from_atoms(v.atoms.coords_zyx_angstrom, v.atoms.elements,
                                            occupancies=v.atoms.occupancies,
                                            provenance=v.provenance, **kw)
                    write_density(out / f"{name}_v{i:03d}.mrc", dv)
                    provenance[f"{name}_v{i:03d}.mrc"] = dv.provenance
                    prog.advance(task)
    atomic_write_text(out / "provenance.json", json.dumps(provenance, indent=2, default=str))
    console.print(f"wrote {len(provenance)} maps to {out}")


def sim_tomograms(
    sources: list[str] = typer.Argument(..., help="One density source per class."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    config: Path = opt.config("TomogramConfig"),
    n_tomograms: int = typer.Option(1, "--n-tomograms", help="Number of tomograms."),
    n_particles: int = typer.Option(None, "--n-particles", help="Particles per tomogram (default from TomogramConfig)."),
    tilt_min_deg: float = opt.tilt_min(None),
    tilt_max_deg: float = opt.tilt_max(None),
    ctf: bool = typer.Option(None, "--ctf/--no-ctf", help="Apply the CTF to the tilt images (default from TomogramConfig)."),
    seed: int = opt.seed(),
) -> None:
    """Virtual samples → tilt series (MRCS), WBP tomograms (MRC), ground truth (STAR)."""
    from cryoframe.simulate.config import TomogramConfig, load_config

    cfg = load_config(TomogramConfig, config, n_particles=n_particles,
                      tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg, ctf=ctf)
    out.mkdir(parents=True, exist_ok=True)
    _per_run_record(out, cfg)
    dens = build_densities(sources)
    vs = float(dens[0].voxel_size_angstrom)
    names = [Path(str(s)).name.split(".")[0].upper() for s in sources]
    with _progress() as prog:
        task = prog.add_task("tomograms", total=n_tomograms)
        for i in range(n_tomograms):
            r = simulate_tomogram(dens, cfg, seed=seed + i, voxel_size_angstrom=vs)
            stem = f"tomo_{i:03d}"
            write_mrc(out / f"{stem}.mrc", r.tomogram.numpy(), voxel_size_angstrom=vs)
            write_mrc(out / f"{stem}_tilts.mrcs", r.tilt_series.images.numpy(),
                      voxel_size_angstrom=vs)
            table = _canonical_table(r.extraction.table, vs, cfg.box_size_px, stem, names)
            write_particles(out / f"{stem}_particles.star", subtomo_to_relion(table, vs))
            r.scene.to_frame().to_parquet(out / f"{stem}_scene.parquet")
            prog.advance(task)
    console.print(f"wrote {n_tomograms} tomograms to {out}")


def sim_subtomograms(
    out: Path = typer.Option(..., "--out", help="Store directory (*.zarr)."),
    config: Path = opt.config("SubtomogramDatasetConfig"),
    structures: list[str] = typer.Option(None, "--structure", help="Repeat per class."),
    n_per_class: int = typer.Option(None, "--n-per-class", help="Subtomograms per class (default from the config)."),
    path: str = typer.Option(None, "--path", help="'fast' or 'full'."),
    seed: int = opt.seed(None),
    shard: str = typer.Option(None, "--shard", help="k/n: this job's share of the units."),
    dask_workers: int = typer.Option(0, "--dask-workers",
                                     help="Run units on a local Dask cluster."),
    export: Path = typer.Option(None, "--export", help="Also export MRC + RELION STAR."),
    export_snr: float = typer.Option(None, "--export-snr",
                                     help="Materialise noise at this SNR in the export."),
) -> None:
    """Fill (or resume) a subtomogram store; noise is added on the fly when reading."""
    from cryoframe.simulate.config import SubtomogramDatasetConfig, load_config

    cfg = load_config(SubtomogramDatasetConfig, config, structures=structures or None,
                      n_per_class=n_per_class, path=path, seed=seed)
    k_n = parse_shard(shard)
    out.parent.mkdir(parents=True, exist_ok=True)
    client = None
    if dask_workers:
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=dask_workers, threads_per_worker=1,
                                     dashboard_address=None))
    try:
        with _progress() as prog:
            task = prog.add_task(f"units (shard {k_n[0]}/{k_n[1]})", total=None)

            def tick(i: int, n: int) -> None:
                prog.update(task, completed=i, total=n)

            store = simulate_subtomograms(cfg, out, shard=k_n, progress=tick,
                                          dask_client=client)
    finally:
        if client is not None:
            client.close()
    _per_run_record(out, cfg)
    console.print(f"{len(store.done_units())}/{store.n_units} units done in {out}")
    if export is not None:

        transform = None
        if export_snr is not None:
            def transform(batch: dict, snr=export_snr) -> dict:
                b = next(iter(noisy_batches(_One(batch, store), snr)))
                return b

        star = store.export_relion(
            export, voxel_size_angstrom=cfg.density.voxel_size_angstrom,
            transform=transform, read_arrays=tuple(store.attrs.get("arrays", {"volumes": 0})
                                                   .keys() - {"masks"}))
        console.print(f"exported {star}")


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command group."""
    sim = typer.Typer(help="CryoEngine: synthetic densities, tomograms, subtomograms, particles.",
                      no_args_is_help=True)
    app.add_typer(sim, name="simulate")

    sim.command("structures", epilog=opt.example(
        "cryoframe simulate structures 3J9I 1BXN --out maps/ --pixel-size 10"))(sim_structures)
    sim.command("tomograms", epilog=opt.example(
        "cryoframe simulate tomograms 3J9I 1BXN --out tomos/ --n-tomograms 2"))(sim_tomograms)
    sim.command("subtomograms", epilog=opt.example(
        "cryoframe simulate subtomograms --out store.zarr --structure 3J9I --structure 1BXN --n-per-class 64"))(sim_subtomograms)
    # the same command as `cryoframe particles simulate` (one implementation, same flags)
    sim.command("particles", epilog=particles_cli.SIMULATE_EXAMPLE)(
        particles_cli.particles_simulate)


def _per_run_record(out: Path, cfg) -> None:
    """The resolved config next to the output (``write_run_record``) plus one record per run
    (``simulate_run_<UTC time>.json`` inside an output folder, beside an output file).
    """
    write_run_record(config_record_path(out), "simulate", cfg)
    out = Path(out)
    folder = out if out.is_dir() else out.parent
    write_timestamped_record(folder, "simulate", cfg)


class _One:
    """Adapter presenting one already-read batch as a store to :func:`noisy_batches`."""

    def __init__(self, batch: dict, store) -> None:
        self._batch = batch
        self.attrs = store.attrs

    def iter_batches(self, batch_size, names, transform):
        yield transform(self._batch)
