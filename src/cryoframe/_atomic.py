"""Atomic file output: write to a temporary file in the target directory, then rename.

An interrupted write never leaves a half-written file at the destination, and an existing file
is only replaced once the new content is complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    Parameters
    ----------
    path : str or Path
        Final destination.
    suffix : str, optional
        Suffix of the temporary file (some writers pick the format from it); defaults to the
        destination's own suffix(es).

    Yields
    ------
    Path
        Where the caller must write. Removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp creates 0600 files; give the result the mode an ordinary open() would
            # (0666 minus the umask), so outputs stay readable by the group.
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_savefig(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file, then rename).

    ``format="png"`` is the default because the temporary file's name does not end in ``.png``.
    """
    savefig_kwargs.setdefault("format", "png")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(path)
