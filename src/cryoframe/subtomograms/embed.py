"""Embeddings of subtomograms with a pretrained encoder (``cryoframe embed INPUT --out emb.npz``).

INPUT is a CryoEngine store folder (``store.zarr``), a RELION STAR file whose
``rlnImageName`` column names one subtomogram MRC per row (relative to the STAR file), or a
single MRC file holding one volume. The data's voxel size (``--pixel-size``, else the store's
attributes, the STAR's ``rlnImagePixelSize``/optics, or the MRC header) is compared with the
encoder's training sampling (10 Å/voxel, 32³ for the shipped weights): volumes at another
sampling or box are resampled (Fourier crop/pad, centred crop/pad; one line says what was done)
or refused when that cannot be done within 1 %. Each volume is standardised (zero mean, unit std)
and encoded as the pair ``(x, x)``.

The output ``.npz`` holds plain arrays only (``np.load`` needs no ``allow_pickle``):
``embeddings`` `(N, F)` float32, ``index``, ``image_name`` (unicode strings: the STAR's
``rlnImageName``, the MRC path, or ``row@store``), ``class_id`` for stores, ``voxel_size_angstrom``
(of the input), ``encoder_voxel_size_angstrom``, ``resampling`` (what was done) and ``weights``
(path of the encoder file). Embeddings are streamed into the file batch by batch, so memory does
not grow with the number of volumes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError
from cryoframe.fourier.resample import plan_resample, resample_volumes
from cryoframe.io.mrc import read_mrc
from cryoframe.io.star import read_particles, table_pixel_size
from cryoframe.models.pretrained import shipped_encoder_path
from cryoframe.subtomograms.reading import encoder_and_sampling, resolve, select_class
from cryoframe.train.loop import embed_for_inference
from cryoframe.train.subtomo_data import StoreSource


def _store_source(path: Path, batch_size: int, pixel_size: float | None):

    src = StoreSource(path)
    px = pixel_size or src.store.attrs.get("voxel_size_angstrom")
    if not px:
        raise InputError("store has no voxel size", file=path, field="voxel_size_angstrom",
                         expected="a store written by cryoframe simulate, or --pixel-size")

    def batches():
        for s in range(0, len(src), batch_size):
            b = src.get(np.arange(s, min(s + batch_size, len(src))))
            idx = b["index"].numpy()
            yield b["clean"], {"index": idx, "class_id": b["class_id"].numpy(),
                               "image_name": np.array([f"{i}@{path.name}" for i in idx])}

    return len(src), float(px), batches()


def _star_source(path: Path, batch_size: int, pixel_size: float | None,
                 class_number: int | None, class_column: str):
    import torch


    table = select_class(read_particles(path), path, class_number, class_column)
    df = table.particles
    if "rlnImageName" not in df:
        raise InputError("no rlnImageName column", file=path, field="rlnImageName",
                         expected="one subtomogram MRC per particle")
    names = df["rlnImageName"].astype(str).tolist()
    px = pixel_size or table_pixel_size(table)
    if names:
        first = resolve(path, names[0])
        px_hdr = read_mrc(first, mmap=True).voxel_size_angstrom
        if px is None:
            px = px_hdr
        elif pixel_size is None and abs(px_hdr - 1.0) > 1e-6 and abs(px - px_hdr) > 0.01 * px:
            raise InputError(f"table says {px:g} Å/voxel, MRC header {px_hdr:g} Å", file=path,
                             field="rlnImagePixelSize",
                             expected="the same voxel size in the STAR and the MRC headers "
                             "(or --pixel-size)")
    px = px or 1.0

    def batches():
        for s in range(0, len(names), batch_size):
            vols = []
            for name in names[s:s + batch_size]:
                p = resolve(path, name)
                v = np.asarray(read_mrc(p).data, dtype=np.float32)
                if v.ndim != 3 or len(set(v.shape)) != 1:
                    raise InputError(f"volume of shape {v.shape}", file=p, field="data",
                                     expected="a cubic 3D subtomogram")
                vols.append(v)
            yield torch.from_numpy(np.stack(vols)), {
                "index": np.arange(s, s + len(vols)),
                "image_name": np.array(names[s:s + len(vols)], dtype=str)}

    return len(names), float(px), batches()


def _mrc_source(path: Path, pixel_size: float | None):
    import torch

    from cryoframe.io.mrc import read_mrc

    m = read_mrc(path)
    data = np.asarray(m.data, dtype=np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise InputError(f"volume of shape {data.shape}", file=path, field="data",
                         expected="one cubic (z, y, x) subtomogram")
    px = pixel_size or m.voxel_size_angstrom
    return 1, float(px), iter([(torch.from_numpy(data[None]), {
        "index": np.zeros(1, np.int64), "image_name": np.array([str(path)])})])


class _NpzWriter:
    """Write an ``.npz`` entry by entry; one large array can be streamed in row chunks."""

    def __init__(self, path: Path) -> None:
        self.zf = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._open = None

    def begin(self, name: str, shape: tuple[int, ...], dtype) -> None:
        self._open = self.zf.open(f"{name}.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(self._open, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
            "shape": tuple(int(s) for s in shape)})

    def write_rows(self, rows: np.ndarray) -> None:
        self._open.write(np.ascontiguousarray(rows).tobytes())

    def end(self) -> None:
        self._open.close()
        self._open = None

    def add(self, name: str, arr) -> None:
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise TypeError(f"{name}: object arrays are not written")
        with self.zf.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)

    def close(self) -> None:
        self.zf.close()


def embed_to_file(path: Path, out: Path, weights: Path | None = None, batch_size: int = 64,
                  pixel_size_angstrom: float | None = None, class_number: int | None = None,
                  class_column: str = "rlnClassNumber", log=None) -> dict:
    """Embed every volume of ``path`` into ``out`` (see module docstring); returns a summary."""
    import torch


    path = Path(path)
    wpath = Path(weights) if weights is not None else shipped_encoder_path()
    encoder, enc_px = encoder_and_sampling(weights)
    box = encoder.volume_size
    if path.is_dir():
        n_total, px, batches = _store_source(path, batch_size, pixel_size_angstrom)
    elif path.suffix.lower() == ".star":
        n_total, px, batches = _star_source(path, batch_size, pixel_size_angstrom,
                                            class_number, class_column)
    else:
        n_total, px, batches = _mrc_source(path, pixel_size_angstrom)
    if n_total == 0:
        raise InputError("no volumes found", file=path)
    extras: dict[str, list] = {}
    plan = None
    n_done, dim = 0, None
    with atomic_path(out, suffix=".npz") as tmp:
        w = _NpzWriter(tmp)
        try:
            for vols, extra in batches:
                if plan is None:
                    plan = plan_resample(vols.shape[-1], px, enc_px, box, file=path)
                    if log is not None and not plan.identity:
                        log(f"sampling: {plan.describe()} (encoder trained at {enc_px:g} "
                            f"Å/voxel, {box}³)")
                elif vols.shape[-1] != plan.box_in:
                    raise InputError(f"box {vols.shape[-1]} differs from {plan.box_in}",
                                     file=path, field="data", expected="one box size")
                with torch.no_grad():
                    emb = embed_for_inference(encoder, resample_volumes(vols, plan))
                emb = emb.numpy().astype(np.float32)
                if dim is None:
                    dim = emb.shape[1]
                    w.begin("embeddings", (n_total, dim), np.float32)
                w.write_rows(emb)
                n_done += len(emb)
                for k, v in extra.items():
                    extras.setdefault(k, []).append(v)
            w.end()
            for k, v in extras.items():
                w.add(k, np.concatenate(v))
            w.add("voxel_size_angstrom", np.float64(px))
            w.add("encoder_voxel_size_angstrom", np.float64(enc_px))
            w.add("resampling", np.array(plan.describe()))
            w.add("weights", np.array(str(wpath)))
        finally:
            w.close()
        if n_done != n_total:
            raise InputError(f"{n_done} volumes read, {n_total} expected", file=path)
    return {"n": n_done, "dim": dim, "voxel_size_angstrom": px, "plan": plan}


def embed_input(path: Path, weights: Path | None = None, batch_size: int = 64, **kw) -> dict:
    """Embed ``path`` and return the arrays (through a temporary file)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "e.npz"
        embed_to_file(path, f, weights, batch_size, **kw)
        with np.load(f) as z:
            return {k: z[k] for k in z.files}

