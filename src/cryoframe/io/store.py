"""Subtomogram / particle store: zarr v3 arrays + Parquet metadata, resumable and shardable.

Layout of a store directory::

    store.zarr/                 zarr v3 group (attrs: n_total, unit_size, box, voxel size, config)
      volumes   (N, L, L, L)    float32, one shard per work unit (``unit_size`` volumes,
                                default 64), inner chunks of 8 volumes
      masks     (N, L, L, L)    uint8 (optional), other per-volume arrays likewise
      meta/unit-000012.parquet  metadata rows of unit 12 (column ``index`` = global row)
      done/unit-000012          completion marker, written last and atomically

Work is split into units of ``unit_size`` consecutive rows; unit ``u`` belongs to job ``k`` of
``n`` when ``u % n == k`` (``--shard k/n``). Every unit writes only its own shard, so jobs can
run concurrently on one store. A unit is done exactly when its marker exists; a run killed
midway leaves at most an unmarked unit, which the next run recomputes and overwrites in place
— rows have fixed positions, so a resumed run can never duplicate them. Readers only see done
units.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cryoframe._atomic import atomic_path, atomic_write_text
from cryoframe._errors import InputError
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import write_particles
from cryoframe.io.subtomo_table import subtomo_to_relion

__all__ = ["SubtomoStore", "parse_shard"]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"k/n"`` → ``(k, n)`` with ``0 ≤ k < n`` (None → ``(0, 1)``)."""
    if text is None or text == "":
        return 0, 1
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise InputError(f"bad shard '{text}'", field="shard", expected="k/n, e.g. 0/4") from None
    if not 0 <= k < n:
        raise InputError(f"bad shard '{text}'", field="shard", expected="0 <= k < n")
    return k, n


class SubtomoStore:
    """A zarr + Parquet store of fixed-size volumes (see module docstring).

    Use :meth:`create` (or :meth:`open`), then :meth:`pending_units` / :meth:`write_unit`;
    read with :meth:`read_table` and :meth:`iter_batches`.
    """

    def __init__(self, path: str | Path) -> None:
        import zarr

        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise InputError("not a cryoframe store", file=self.path,
                             expected="a directory made by SubtomoStore.create")
        self.group = zarr.open_group(str(self.path), mode="r+")
        attrs = dict(self.group.attrs)
        self.n_total = int(attrs["n_total"])
        self.unit_size = int(attrs["unit_size"])
        self.box_size_px = int(attrs["box_size_px"])
        self.attrs = attrs

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(
        cls, path: str | Path, n_total: int, box_size_px: int = 32, *, unit_size: int = 64,
        arrays: dict[str, str] | None = None, attrs: dict | None = None,
    ) -> SubtomoStore:
        """Create a store, or open an existing compatible one (for resuming / other shards).

        Parameters
        ----------
        path : str or Path
            Store directory (``*.zarr``).
        n_total : int
            Number of rows ``N``.
        box_size_px : int
            Volume edge ``L``.
        unit_size : int
            Rows per work unit (= per zarr shard).
        arrays : dict, optional
            Array name → dtype (default ``{"volumes": "float32", "masks": "uint8"}``).
        attrs : dict, optional
            JSON-able attributes (config, voxel size ...).
        """
        import zarr

        path = Path(path)
        arrays = arrays or {"volumes": "float32", "masks": "uint8"}
        if (path / "zarr.json").exists():
            store = cls(path)
            if store.n_total != n_total or store.box_size_px != box_size_px or \
                    store.unit_size != unit_size:
                raise InputError("existing store has a different layout", file=path,
                                 field="n_total/box_size_px/unit_size",
                                 expected=f"{store.n_total}/{store.box_size_px}/{store.unit_size}")
            return store
        if n_total <= 0 or unit_size <= 0:
            raise InputError("store needs n_total > 0 and unit_size > 0", field="n_total")
        group = zarr.open_group(str(path), mode="a")
        L = int(box_size_px)
        inner = min(8, unit_size) if unit_size % min(8, unit_size) == 0 else unit_size
        for name, dtype in arrays.items():
            group.create_array(name=name, shape=(n_total, L, L, L), dtype=dtype,
                               chunks=(inner, L, L, L), shards=(unit_size, L, L, L),
                               fill_value=0)
        meta = {"n_total": int(n_total), "unit_size": int(unit_size), "box_size_px": L,
                "arrays": dict(arrays), **(attrs or {})}
        group.attrs.update(json.loads(json.dumps(meta, default=str)))
        (path / "meta").mkdir(exist_ok=True)
        (path / "done").mkdir(exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> SubtomoStore:
        """Open an existing store."""
        return cls(path)

    # ---------------------------------------------------------------- units
    @property
    def n_units(self) -> int:
        """Number of work units."""
        return -(-self.n_total // self.unit_size)

    def unit_rows(self, unit: int) -> range:
        """Global rows of ``unit``."""
        return range(unit * self.unit_size, min(self.n_total, (unit + 1) * self.unit_size))

    def _marker(self, unit: int) -> Path:
        return self.path / "done" / f"unit-{unit:06d}"

    def _meta_path(self, unit: int) -> Path:
        return self.path / "meta" / f"unit-{unit:06d}.parquet"

    def done_units(self) -> list[int]:
        """Units whose marker exists."""
        return sorted(int(p.name.split("-")[1]) for p in (self.path / "done").glob("unit-*"))

    def pending_units(self, shard: tuple[int, int] = (0, 1)) -> list[int]:
        """Units of job ``shard = (k, n)`` that are not done yet."""
        k, n = shard
        done = set(self.done_units())
        return [u for u in range(self.n_units) if u % n == k and u not in done]

    def write_unit(self, unit: int, arrays: dict[str, np.ndarray], table: pd.DataFrame) -> None:
        """Write one unit's arrays and metadata, then mark it done (atomically, last).

        Parameters
        ----------
        unit : int
            Unit id.
        arrays : dict
            Name → `(n_rows, L, L, L)` data for the unit's rows.
        table : pd.DataFrame
            `n_rows` metadata rows; a column ``index`` with the global rows is added.
        """
        rows = self.unit_rows(unit)
        n = len(rows)
        if len(table) != n:
            raise InputError(f"unit {unit} needs {n} metadata rows, got {len(table)}",
                             field="table")
        for name, data in arrays.items():
            data = np.asarray(data)
            if data.shape[0] != n:
                raise InputError(f"unit {unit} needs {n} rows of '{name}', got {data.shape[0]}",
                                 field=name)
            arr = self.group[name]
            arr[rows.start:rows.stop] = data.astype(arr.dtype, copy=False)
        table = table.reset_index(drop=True).copy()
        table.insert(0, "index", np.arange(rows.start, rows.stop, dtype=np.int64))
        with atomic_path(self._meta_path(unit)) as tmp:
            table.to_parquet(tmp, index=False)
        atomic_write_text(self._marker(unit), f"{n}\n")
        try:  # make the marker durable where the platform allows it
            fd = os.open(self.path / "done", os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        except OSError:
            pass

    # ---------------------------------------------------------------- reading
    def read_table(self) -> pd.DataFrame:
        """Metadata of all done units, sorted by ``index``."""
        parts = [pd.read_parquet(self._meta_path(u)) for u in self.done_units()]
        if not parts:
            return pd.DataFrame({"index": np.zeros(0, np.int64)})
        return pd.concat(parts, ignore_index=True).sort_values("index").reset_index(drop=True)

    def iter_batches(
        self, batch_size: int = 64, arrays: tuple[str, ...] = ("volumes",),
        transform: Callable[[dict], dict] | None = None,
    ) -> Iterator[dict]:
        """Stream done rows in order without loading the store.

        Yields
        ------
        dict
            ``{"index": (b,) int64, "table": DataFrame, <array>: (b, L, L, L) ndarray}``;
            ``transform`` (e.g. on-the-fly noise) is applied to each batch.
        """
        pending: list[dict] = []  # row blocks not yet emitted (may span units)
        n_pending = 0

        def emit(blocks: list[dict]) -> dict:
            batch = {"index": np.concatenate([b["index"] for b in blocks]),
                     "table": pd.concat([b["table"] for b in blocks], ignore_index=True)}
            for name in arrays:
                batch[name] = np.concatenate([b[name] for b in blocks])
            return transform(batch) if transform is not None else batch

        for unit in self.done_units():
            meta = pd.read_parquet(self._meta_path(unit))
            rows = self.unit_rows(unit)
            block = {"index": meta["index"].to_numpy(), "table": meta}
            block.update({name: self.group[name][rows.start:rows.stop] for name in arrays})
            pending.append(block)
            n_pending += len(rows)
            while n_pending >= batch_size:
                take, rest, need = [], [], batch_size
                for b in pending:
                    n = len(b["index"])
                    if need >= n:
                        take.append(b)
                        need -= n
                    elif need > 0:
                        take.append({k: (v.iloc[:need].reset_index(drop=True)
                                         if k == "table" else v[:need]) for k, v in b.items()})
                        rest.append({k: (v.iloc[need:].reset_index(drop=True)
                                         if k == "table" else v[need:]) for k, v in b.items()})
                        need = 0
                    else:
                        rest.append(b)
                pending, n_pending = rest, n_pending - batch_size
                yield emit(take)
        if n_pending:
            yield emit(pending)

    # ---------------------------------------------------------------- export
    def export_relion(
        self, out_dir: str | Path, *, voxel_size_angstrom: float,
        transform: Callable[[dict], dict] | None = None, array: str = "volumes",
        tomo_name_column: str = "tomo_name", read_arrays: tuple[str, ...] | None = None,
    ) -> Path:
        """Write every done row as an MRC file plus ``particles.star`` (RELION 5 subtomograms).

        The metadata must hold ``coord_{z,y,x}_angstrom`` (box centre in the tomogram),
        ``shift_{z,y,x}_angstrom`` (particle centre − box centre), ``rot_00``…``rot_22`` and
        ``class_id``: the canonical table of :mod:`cryoframe.io.subtomo_table`. ``transform``
        (e.g. materialised noise) sees the arrays in ``read_arrays``. Origins are
        written as RELION's ``rlnOrigin*Angst = −shift`` and angles via the RELION ZYZ
        convention of :mod:`cryoframe.geometry.euler`.
        """
        out = Path(out_dir)
        (out / "subtomograms").mkdir(parents=True, exist_ok=True)
        tables = []
        names = tuple(sorted(set(read_arrays or ()) | {array}))
        for batch in self.iter_batches(64, names, transform):
            t = batch["table"].copy()
            names = []
            for i, vol in zip(batch["index"], batch[array]):
                name = f"subtomograms/subtomo_{int(i):07d}.mrc"
                write_mrc(out / name, np.asarray(vol, dtype=np.float32),
                          voxel_size_angstrom=voxel_size_angstrom)
                names.append(name)
            t["image_name"] = names
            tables.append(t)
        if not tables:
            raise InputError("store has no finished units to export", file=self.path)
        df = pd.concat(tables, ignore_index=True)
        if tomo_name_column not in df.columns:
            df["tomo_name"] = "tomo"
        rel = subtomo_to_relion(df, voxel_size_angstrom)
        rel.particles["rlnImageName"] = df["image_name"].to_numpy()
        rel.particles["rlnClassNumber"] = df["class_id"].to_numpy(np.int64) + 1
        path = out / "particles.star"
        write_particles(path, rel)
        return path
