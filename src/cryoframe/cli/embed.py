"""``cryoframe embed INPUT --out emb.npz``: embeddings of subtomograms with a pretrained encoder.

INPUT is a CryoEngine store folder (``store.zarr``), a RELION STAR file whose
``rlnImageName`` column names one subtomogram MRC per row (relative to the STAR file), or a
single MRC file holding one volume. Volumes must be cubic with the encoder's box (32 voxels for
the shipped weights, 10 Å/voxel). Each volume is standardised (zero mean, unit std) and encoded
as the pair ``(x, x)``; the output holds ``embeddings`` `(N, F)` float32 plus ``index`` and, for
stores, ``class_id``. By default the weights shipped in the package are used
(``cryoframe/weights/apt_vit_cpu.pt``, see its MODEL_CARD.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from cryoframe._errors import InputError

def _volumes(path: Path, batch_size: int):
    """Yield ``(volumes (b, L, L, L) float32, extra dict)`` batches from any supported input."""
    import torch

    if path.is_dir():
        from cryoframe.train.subtomo_data import StoreSource

        src = StoreSource(path)
        for s in range(0, len(src), batch_size):
            b = src.get(np.arange(s, min(s + batch_size, len(src))))
            yield b["clean"], {"index": b["index"].numpy(), "class_id": b["class_id"].numpy()}
        return
    from cryoframe.io.mrc import read_mrc

    if path.suffix.lower() == ".star":
        from cryoframe.io.star import read_particles

        table = read_particles(path).particles
        if "rlnImageName" not in table:
            raise InputError("no rlnImageName column", file=path, field="rlnImageName",
                             expected="one subtomogram MRC per particle")
        names = table["rlnImageName"].astype(str).tolist()
        for s in range(0, len(names), batch_size):
            vols = []
            for name in names[s:s + batch_size]:
                p = Path(name) if Path(name).is_absolute() else path.parent / name
                vols.append(np.asarray(read_mrc(p).data, dtype=np.float32))
            yield torch.from_numpy(np.stack(vols)), {"index": np.arange(s, s + len(vols))}
        return
    data = np.asarray(read_mrc(path).data, dtype=np.float32)
    if data.ndim != 3:
        raise InputError("expected one 3D volume", file=path, field="data",
                         expected="(z, y, x) subtomogram")
    yield torch.from_numpy(data[None]), {"index": np.zeros(1, np.int64)}


def embed_input(path: Path, weights: Path | None = None, batch_size: int = 64) -> dict:
    """Embed every volume of ``path`` (see module docstring); returns the arrays to save."""
    import torch

    from cryoframe.train.loop import embed_for_inference, load_encoder

    from cryoframe.models.pretrained import shipped_weights_path

    wpath = Path(weights) if weights is not None else shipped_weights_path()
    encoder, meta = load_encoder(wpath)
    box = encoder.volume_size
    embs, extras = [], {}
    for vols, extra in _volumes(Path(path), batch_size):
        if tuple(vols.shape[1:]) != (box, box, box):
            raise InputError(f"volume shape {tuple(vols.shape[1:])}", file=path,
                             field="data", expected=f"cubic {box}³ subtomograms")
        embs.append(embed_for_inference(encoder, vols))
        for k, v in extra.items():
            extras.setdefault(k, []).append(v)
    if not embs:
        raise InputError("no volumes found", file=path)
    out = {"embeddings": torch.cat(embs).numpy().astype(np.float32)}
    out.update({k: np.concatenate(v) for k, v in extras.items()})
    out["weights"] = np.array(str(wpath))
    return out


def register(app: typer.Typer) -> None:
    """Add the ``embed`` command."""

    @app.command("embed")
    def embed(
        input: Path = typer.Argument(..., help="Store folder, STAR file or MRC volume."),
        out: Path = typer.Option(Path("embeddings.npz"), "--out", help="Output .npz file."),
        weights: Path = typer.Option(None, "--weights", help="Encoder weights (default: shipped)."),
        batch_size: int = typer.Option(64, "--batch-size", help="Volumes per batch."),
    ) -> None:
        """Write embeddings of subtomograms to an .npz file."""
        from rich.console import Console

        from cryoframe._atomic import atomic_path

        if not input.exists():
            raise InputError("input not found", file=input)
        arrays = embed_input(input, weights, batch_size)
        with atomic_path(out, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        n, d = arrays["embeddings"].shape
        Console().print(f"wrote {n} embeddings of dimension {d} to {out}")
