"""MRC / MRCS maps and image stacks through :mod:`mrcfile`.

Arrays are indexed ``(z, y, x)`` (section, row, column), exactly as :mod:`mrcfile` returns them.
Voxel sizes and origins are in Å; origins are returned in zyx order.

Behaviour on odd headers
------------------------
* Voxel size 0 (common in files written by tools that ignore the cell record): a
  :class:`MrcHeaderWarning` is emitted and 1.0 Å is used (as ChimeraX and RELION do), unless the
  caller passes ``voxel_size_angstrom=`` to :func:`read_mrc`, which always overrides the header.
* Anisotropic pixels in x/y are rejected (:class:`~cryoframe.InputError`); a different z spacing
  is accepted for image stacks and warned about for volumes.
* Gzipped files (``.mrc.gz``) are read fully into memory; ``mmap=True`` is ignored for them.
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import mrcfile.utils
import numpy as np

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError

__all__ = [
    "MrcHeader",
    "MrcHeaderWarning",
    "MrcVolume",
    "read_image_stack",
    "read_mrc",
    "read_mrc_header",
    "read_volume",
    "write_mrc",
]

_GZIP_MAGIC = b"\x1f\x8b"


class MrcHeaderWarning(UserWarning):
    """A header record is unusual but the file can still be used (e.g. voxel size 0)."""


@dataclass(frozen=True)
class MrcHeader:
    """The header records cryoframe uses.

    Attributes
    ----------
    shape_zyx : tuple of int
        ``(nz, ny, nx)``; for image stacks ``nz`` is the number of images.
    mode : int
        MRC data mode (0, 1, 2, 4, 6, 12 ...).
    dtype : numpy.dtype
        Data type of the stored values.
    voxel_size_zyx_angstrom : tuple of float
        Cell dimensions divided by the sampling, per axis (0 when the header leaves them unset).
    origin_zyx_angstrom : tuple of float
        The MRC2014 ``origin`` record, in Å, zyx order.
    is_image_stack : bool
        True when the header marks a stack of 2D images (``ispg == 0`` and ``nz > 1``).
    data_offset_bytes : int
        Where the data block starts (1024 + extended header).
    data_shape : tuple of int
        Shape of the data array as mrcfile returns it (``(ny, nx)`` for a single image with
        ``ispg`` 0, else ``shape_zyx``).
    """

    shape_zyx: tuple[int, int, int]
    mode: int
    dtype: np.dtype
    voxel_size_zyx_angstrom: tuple[float, float, float]
    origin_zyx_angstrom: tuple[float, float, float]
    is_image_stack: bool
    data_offset_bytes: int
    data_shape: tuple[int, ...]


@dataclass(frozen=True)
class MrcVolume:
    """Data and geometry of an MRC file.

    Attributes
    ----------
    data : numpy.ndarray
        `(z, y, x)` volume, `(n, y, x)` image stack or `(y, x)` single image. A read-only
        ``numpy.memmap`` when read with ``mmap=True``.
    voxel_size_angstrom : float
        Pixel/voxel size in Å (x spacing; y is checked to be equal).
    origin_angstrom : tuple of float
        MRC2014 origin record in Å, zyx order.
    is_image_stack : bool
        Whether the header marks the file as a stack of 2D images.
    """

    data: np.ndarray
    voxel_size_angstrom: float
    origin_angstrom: tuple[float, float, float]
    is_image_stack: bool = False


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_error(path: Path, exc: Exception) -> InputError:
    """Turn an mrcfile validation error into an InputError naming the header field."""
    text = str(exc)
    lower = text.lower()
    if "map id" in lower:
        return InputError(f"not an MRC file ({text})", file=path, field="MAP",
                          expected="the bytes 'MAP ' at offset 208 (MRC2014)")
    if any(k in lower for k in ("too small", "truncated", "data block", "file size")):
        expected = "a data block matching nx*ny*nz*bytes-per-voxel from the header"
        try:
            hdr = read_mrc_header(path, _raw=True)
            n = int(np.prod(hdr.shape_zyx)) * hdr.dtype.itemsize
            expected = (f"{hdr.data_offset_bytes + n} bytes for shape {hdr.shape_zyx} "
                        f"mode {hdr.mode}")
        except Exception:  # noqa: BLE001 - best effort, the header itself may be broken
            pass
        return InputError(f"file is truncated or has a wrong size ({text})", file=path,
                          field="data", expected=expected)
    if "mode" in lower:
        return InputError(f"unsupported data mode ({text})", file=path, field="mode",
                          expected="one of 0, 1, 2, 4, 6, 12")
    return InputError(f"invalid MRC file ({text})", file=path, field="header",
                      expected="a valid MRC2014 file")


def read_mrc_header(path: str | Path, _raw: bool = False) -> MrcHeader:
    """Read the header of an MRC / MRCS file (plain or gzipped) without its data.

    Parameters
    ----------
    path : str or Path
        File to inspect.

    Returns
    -------
    MrcHeader

    Raises
    ------
    InputError
        The file is missing or its header is not a valid MRC header.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field="path", expected="an existing file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", header_only=True, permissive=_raw) as mrc:
                header = mrc.header
                ext = int(mrc.extended_header.nbytes) if mrc.extended_header is not None else 0
    except (ValueError, OSError, EOFError) as exc:
        raise _open_error(path, exc) from exc
    if header is None:
        raise InputError("no readable header", file=path, field="header",
                         expected="a 1024-byte MRC2014 header")
    try:
        dtype = mrcfile.utils.data_dtype_from_header(header)
    except ValueError as exc:
        raise _open_error(path, exc) from exc
    nz, ny, nx = int(header.nz), int(header.ny), int(header.nx)
    mx, my, mz = int(header.mx), int(header.my), int(header.mz)
    cella = header.cella
    vs = tuple(
        float(c) / m if m > 0 else 0.0
        for c, m in ((cella.z, mz), (cella.y, my), (cella.x, mx))
    )
    origin = (float(header.origin.z), float(header.origin.y), float(header.origin.x))
    return MrcHeader(
        shape_zyx=(nz, ny, nx),
        mode=int(header.mode),
        dtype=np.dtype(dtype),
        voxel_size_zyx_angstrom=vs,  # type: ignore[arg-type]
        origin_zyx_angstrom=origin,
        is_image_stack=int(header.ispg) == 0 and nz > 1,
        data_offset_bytes=1024 + ext,
        data_shape=tuple(int(v) for v in mrcfile.utils.data_shape_from_header(header)),
    )


def _voxel_size(path: Path, hdr: MrcHeader, override: float | None) -> float:
    if override is not None:
        if not np.isfinite(override) or override <= 0:
            raise InputError(f"invalid voxel size {override}", field="voxel_size_angstrom",
                             expected="a positive number of Å")
        return float(override)
    vz, vy, vx = hdr.voxel_size_zyx_angstrom
    if vx <= 0 or vy <= 0:
        warnings.warn(
            f"{path}: voxel size is 0 in the header; using 1.0 Å "
            "(pass voxel_size_angstrom= to override)",
            MrcHeaderWarning,
            stacklevel=3,
        )
        return 1.0
    if not np.isclose(vx, vy, rtol=1e-4):
        raise InputError(f"anisotropic pixels x={vx:.5g} Å, y={vy:.5g} Å", file=path,
                         field="cella/mx,my", expected="equal x and y voxel sizes")
    if not hdr.is_image_stack and hdr.shape_zyx[0] > 1 and vz > 0 and not np.isclose(vx, vz,
                                                                                      rtol=1e-4):
        warnings.warn(f"{path}: z spacing {vz:.5g} Å differs from x spacing {vx:.5g} Å; "
                      "using the x spacing", MrcHeaderWarning, stacklevel=3)
    return float(vx)


def _check_finite(path: Path, data: np.ndarray) -> None:
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise InputError(f"{n_bad} NaN/inf values in the data", file=path, field="data",
                         expected="finite values")


def read_mrc(
    path: str | Path,
    mmap: bool = False,
    *,
    voxel_size_angstrom: float | None = None,
    check_finite: bool | None = None,
) -> MrcVolume:
    """Read an MRC/MRCS file (optionally gzipped, optionally memory-mapped).

    Parameters
    ----------
    path : str or Path
        ``.mrc``, ``.mrcs``, ``.map``, ``.rec`` or any of these gzipped.
    mmap : bool
        Memory-map the data block (read-only ``numpy.memmap``) instead of loading it; for large
        files. Ignored for gzipped files.
    voxel_size_angstrom : float, optional
        Override the header's voxel size (needed when the header stores 0).
    check_finite : bool, optional
        Reject NaN/inf values. Defaults to True for in-memory reads and False for ``mmap=True``
        (scanning would load the whole file).

    Returns
    -------
    MrcVolume
        ``data`` `(z, y, x)` / `(n, y, x)` / `(y, x)` in the file's dtype.

    Raises
    ------
    InputError
        Missing, truncated or non-MRC file, unsupported mode, NaN/inf data.
    """
    path = Path(path)
    permissive = False
    try:
        hdr = read_mrc_header(path)
    except InputError as exc:
        hdr = _legacy_header(path, exc)  # re-raises unless a consistent pre-2014 file
        permissive = True
    vs = _voxel_size(path, hdr, voxel_size_angstrom)
    gz = _is_gzip(path)
    if check_finite is None:
        check_finite = not (mmap and not gz)
    if mmap and not gz:
        _check_size(path, hdr, path.stat().st_size)
        data: np.ndarray = np.memmap(path, dtype=hdr.dtype, mode="r",
                                     offset=hdr.data_offset_bytes, shape=hdr.data_shape)
    else:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                with mrcfile.open(path, mode="r", permissive=permissive) as mrc:
                    data = np.asarray(mrc.data).copy()
        except (ValueError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise _open_error(path, exc) from exc
        for w in caught:
            # mrcfile's own size validation: a data block larger than the header describes
            # means the header (mode or dimensions) does not describe the data.
            if "larger than expected" in str(w.message):
                extra = int(str(w.message).split()[3]) if str(w.message).split()[3].isdigit() \
                    else 0
                _check_size(path, hdr, hdr.data_offset_bytes + data.nbytes + extra)
    if data.size == 0:
        raise InputError(f"empty data block, shape {tuple(data.shape)}", file=path,
                         field="nx/ny/nz", expected="at least one voxel")
    if check_finite:
        _check_finite(path, data)
    return MrcVolume(data=data, voxel_size_angstrom=vs, origin_angstrom=hdr.origin_zyx_angstrom,
                     is_image_stack=hdr.is_image_stack)


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}


def _check_size(path: Path, hdr: MrcHeader, file_size: int) -> None:
    """Refuse a file whose data block does not have exactly the size the header implies.

    The message names the header field at fault and, when another data mode would explain the
    size (e.g. a header saying mode 1, int16, over float32 data), says so.
    """
    n_vox = int(np.prod(hdr.shape_zyx))
    want = hdr.data_offset_bytes + n_vox * hdr.dtype.itemsize
    if file_size == want:
        return
    got = file_size - hdr.data_offset_bytes
    fits = [m for m, b in _MODE_BYTES.items() if n_vox and got == n_vox * b and m != hdr.mode]
    hint = f"; the size fits mode {fits[0]}" if fits else ""
    kind = "truncated" if file_size < want else "larger than the header describes"
    raise InputError(
        f"data block of {got} bytes is {kind}: header mode {hdr.mode} ({hdr.dtype}) and shape "
        f"{hdr.shape_zyx} imply {want - hdr.data_offset_bytes} bytes{hint}",
        file=path, field="mode" if fits else ("data" if file_size < want else "nx/ny/nz"),
        expected=f"a file of {want} bytes, or a header whose mode and dimensions match the data")


def _legacy_header(path: Path, exc: InputError) -> MrcHeader:
    """Header of a file without the MRC2014 ``MAP `` stamp, if it is otherwise consistent.

    Older writers (pre-2014 RELION, EMAN, some IMOD versions) omit the stamp at offset 208. Such
    a file is accepted, with a warning, when its mode is valid and its size matches the header's
    dimensions exactly; anything else re-raises ``exc`` (e.g. arbitrary bytes).
    """
    if exc.field != "MAP" or _is_gzip(path):
        raise exc
    try:
        hdr = read_mrc_header(path, _raw=True)
    except InputError:
        raise exc from None
    n_bytes = int(np.prod(hdr.shape_zyx)) * hdr.dtype.itemsize
    if min(hdr.shape_zyx) < 1 or path.stat().st_size != hdr.data_offset_bytes + n_bytes:
        raise exc
    warnings.warn(f"{path}: no MRC2014 'MAP ' stamp; read as a pre-2014 MRC file",
                  stacklevel=3)
    return hdr


def read_volume(path: str | Path, mmap: bool = False, **kwargs: object) -> MrcVolume:
    """Read an MRC file that must hold a 3D volume `(z, y, x)`.

    Raises
    ------
    InputError
        The file holds a single 2D image or is marked as an image stack.
    """
    vol = read_mrc(path, mmap=mmap, **kwargs)  # type: ignore[arg-type]
    # ispg = 0 with nz > 1 formally marks an image stack, but many map writers (e.g. polnet)
    # leave ispg at 0 for volumes: only a .mrcs file is taken to be a stack here.
    stack = vol.is_image_stack and Path(path).suffix.lower() == ".mrcs"
    if vol.data.ndim != 3 or stack:
        shape = tuple(vol.data.shape)
        kind = "image stack" if stack else f"{vol.data.ndim}D array"
        raise InputError(f"got an {kind} of shape {shape}", file=path, field="dimensions",
                         expected="a 3D volume (nz > 1; not a .mrcs stack)")
    return vol


def read_image_stack(path: str | Path, mmap: bool = False, **kwargs: object) -> MrcVolume:
    """Read an MRC/MRCS file as a stack of 2D images `(n, y, x)`.

    A single 2D image is returned as a stack of one. Files whose header marks them as 3D volumes
    (``ispg`` ≠ 0 and ``nz`` > 1) are rejected, so a map is never mistaken for particles.
    """
    vol = read_mrc(path, mmap=mmap, **kwargs)  # type: ignore[arg-type]
    data = vol.data
    if data.ndim == 2:
        data = data[None]
    elif data.ndim == 3 and not vol.is_image_stack and data.shape[0] > 1:
        raise InputError(f"got a 3D volume of shape {tuple(data.shape)}", file=path,
                         field="ispg", expected="an image stack (ispg = 0, e.g. .mrcs)")
    return MrcVolume(data=data, voxel_size_angstrom=vol.voxel_size_angstrom,
                     origin_angstrom=vol.origin_angstrom, is_image_stack=True)


def write_mrc(
    path: str | Path,
    data: np.ndarray,
    voxel_size_angstrom: float,
    origin_angstrom: tuple[float, float, float] | None = None,
    float16: bool = False,
    image_stack: bool | None = None,
) -> Path:
    """Write a volume, image or image stack to MRC atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or Path
        Destination; a ``.gz`` suffix writes a gzipped file.
    data : numpy.ndarray or torch.Tensor
        `(z, y, x)` volume, `(n, y, x)` stack or `(y, x)` image. Must be finite. Floating data is
        stored as float32 (mode 2), or float16 (mode 12) with ``float16=True``; int8, int16 and
        uint16 data keep their type.
    voxel_size_angstrom : float
        Voxel size in Å (> 0).
    origin_angstrom : tuple of float, optional
        MRC2014 origin in Å, zyx order. Default 0.
    float16 : bool
        Store as IEEE half precision (mode 12, half the size, ~3 significant digits).
    image_stack : bool, optional
        Mark a 3D array as a stack of images (``ispg = 0``). Default: True for ``.mrcs``.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise InputError(f"cannot write a {data.ndim}D array of shape {data.shape}",
                         file=path, field="data", expected="a 2D image or 3D volume/stack")
    if not np.isfinite(voxel_size_angstrom) or voxel_size_angstrom <= 0:
        raise InputError(f"invalid voxel size {voxel_size_angstrom}", file=path,
                         field="voxel_size_angstrom", expected="a positive number of Å")
    _check_finite(path, data)
    if float16:
        if data.size and float(np.abs(data).max()) > float(np.finfo(np.float16).max):
            raise InputError("values overflow float16 (|x| > 65504)", file=path, field="data",
                             expected="values representable in float16, or float16=False")
        out = data.astype(np.float16)
    elif data.dtype in (np.int8, np.int16, np.uint16, np.float32):
        out = data
    elif data.dtype.kind in "fiub":
        out = data.astype(np.float32)
    else:
        raise InputError(f"unsupported dtype {data.dtype}", file=path, field="data",
                         expected="a real-valued array")
    if image_stack is None:
        suffixes = [s.lower() for s in path.suffixes]
        image_stack = ".mrcs" in suffixes
    compression = "gzip" if path.suffix.lower() == ".gz" else None
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
            mrc.set_data(np.ascontiguousarray(out))
            if image_stack and out.ndim == 3:
                mrc.set_image_stack()
            elif out.ndim == 3:
                mrc.set_volume()
            mrc.voxel_size = float(voxel_size_angstrom)
            if origin_angstrom is not None:
                oz, oy, ox = (float(v) for v in origin_angstrom)
                mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = ox, oy, oz
            mrc.update_header_stats()
    return path
