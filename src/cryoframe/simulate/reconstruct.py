"""Weighted back-projection (CryoEngine, App. C.1 "Alignment and Reconstruction").

Each aligned tilt image is filtered by the ramp ``|k_x|`` (perpendicular to the tilt axis y)
tapered by a Hann window on the image's radial frequency ``|k|``
(:func:`cryoframe.fourier.filters.hann_ramp_filter`, reaching 0 at the spectrum's corner
``0.5·√2`` cycles/px by default). On the central slice ``|k|`` equals the 3D
frequency, so the taper is an isotropic 3D low-pass. Each image is scaled by its angular step
(radians), which makes the reconstruction of a full ±90° series unbiased, and optionally by
``w(θ) = |cos θ|`` as written in App. C (``cosine_weighting=True``; it down-weights high tilts,
so the transfer becomes anisotropic: off by default), and
back-projected along its beam direction with the same geometry as
:mod:`cryoframe.simulate.tiltseries`: voxel ``r`` (relative to the tomogram centre) reads the
detector at ``x' = (R_θ r)_x``, ``y' = y``, linearly interpolated between the two nearest
detector columns — the voxel-driven form of trilinear accumulation (rows are exact because the
tilt axis is y). The loop runs over tilts and z-slabs so peak memory is the volume plus one slab
(``500×500×200`` float32 is 200 MB). WBP is linear: reconstructing a unit-noise series once and
scaling it gives the noise part at any SNR.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.filters import hann_ramp_filter
from cryoframe.simulate.tiltseries import tilt_matrices

__all__ = ["filter_tilts", "backproject", "weighted_backprojection"]


#: Hann cut-off of the WBP filter: the corner of the 2D spectrum, so no sampled frequency is zeroed
HANN_CUTOFF_CYCLES_PER_PX = 0.5 * math.sqrt(2.0)


def filter_tilts(images, tilts_deg, cosine_weighting: bool = False, ctf_sign=None,
                 hann_cutoff_cycles_per_px: float = HANN_CUTOFF_CYCLES_PER_PX) -> torch.Tensor:
    """Hann-tapered ramp filter, angular-step and optional ``|cos θ|`` weights.

    Parameters
    ----------
    images : Tensor
        `(T, H, W)` aligned tilt images.
    tilts_deg : array-like
        `(T,)` tilt angles.
    cosine_weighting : bool
        Multiply image ``t`` by ``|cos θ_t|``.
    ctf_sign : Tensor, optional
        `(T, H, W // 2 + 1)` sign of each tilt's CTF for phase flipping (None: no correction).
    hann_cutoff_cycles_per_px : float
        Where the Hann taper reaches 0 (default: the spectrum's corner, 0.707 cycles/px; 0.5
        zeroes Nyquist and attenuates the top shells more).

    Returns
    -------
    Tensor
        `(T, H, W)` filtered images.
    """
    im = torch.as_tensor(images, dtype=torch.float32)
    T, H, W = im.shape
    tilts = np.asarray(tilts_deg, dtype=np.float64)
    if tilts.shape != (T,):
        raise InputError(f"{T} images but {tilts.size} tilt angles", field="tilts_deg")
    srt = np.sort(tilts)
    step = np.gradient(srt) if T > 1 else np.array([math.pi / 180.0 * 180.0])
    step_rad = np.deg2rad(step[np.argsort(np.argsort(tilts))]) if T > 1 else np.array([math.pi])
    w = step_rad * (np.abs(np.cos(np.deg2rad(tilts))) if cosine_weighting else 1.0)
    if ctf_sign is not None:
        spec = torch.fft.rfft2(im) * torch.as_tensor(ctf_sign, dtype=torch.float32)
        im = torch.fft.irfft2(spec, s=(H, W))

    spec = torch.fft.rfft2(im) * hann_ramp_filter(
        (H, W), tilt_axis="y", cutoff_cycles_per_px=hann_cutoff_cycles_per_px, rfft=True)
    out = torch.fft.irfft2(spec, s=(H, W))
    return out * torch.as_tensor(w, dtype=torch.float32)[:, None, None]


def backproject(
    filtered, tilts_deg, shape_zyx: tuple[int, int, int], z_chunk: int = 8,
    x_offset_px: float = 0.0, x_scale: int = 1,
) -> torch.Tensor:
    """Voxel-driven back-projection of filtered images into a `(D, H, W)` volume.

    Parameters
    ----------
    filtered : Tensor
        `(T, H, W)` filtered images; ``H`` must equal the volume height (tilt axis y).
    tilts_deg : array-like
        `(T,)` tilt angles.
    shape_zyx : tuple of int
        Output shape ``(D, H, W_vol)``.
    z_chunk : int
        z-slices per slab.
    x_offset_px : float
        Detector x position of the tilt axis relative to the detector centre (detector px).
    x_scale : int
        Detector pixels per voxel along x (2 for images upsampled 2× along x).

    Returns
    -------
    Tensor
        `(D, H, W_vol)` float32.
    """
    f = torch.as_tensor(filtered, dtype=torch.float32)
    T, Hd, Wd = f.shape
    D, H, Wv = shape_zyx
    if Hd != H:
        raise InputError(f"detector height {Hd} differs from volume height {H}", field="shape_zyx")
    R = tilt_matrices(tilts_deg)
    # For a slab of z-slices, voxel column (z, x) receives Σ_t [(1−w) img_t[:, i] + w img_t[:, i+1]]
    # with i + w = x'_t(z, x): a sparse (z·x) × (T·Wd) matrix with 2T entries per row applied to
    # the stacked transposed images (T·Wd, H). One CSR matmul per slab fuses gather,
    # interpolation and the sum over tilts (each output column written once).
    stacked = f.transpose(1, 2).reshape(T * Wd, H).contiguous()  # row t·Wd + x' = column x' of t
    vol = torch.empty((D, Wv, H), dtype=torch.float32)  # (z, x, y) while accumulating
    zc = torch.arange(D, dtype=torch.float64) - D // 2
    xc = torch.arange(Wv, dtype=torch.float64) - Wv // 2
    a = R[:, 2, 2]
    b = R[:, 2, 0]  # x' = b z + a x
    toff = (torch.arange(T) * Wd)[None, None, :, None]
    for z0 in range(0, D, z_chunk):
        zs = zc[z0:z0 + z_chunk]
        nz = len(zs)
        xd = (x_scale * (b[None, None, :] * zs[:, None, None] + a[None, None, :] * xc[None, :, None])
              + Wd // 2 + x_offset_px)  # (z, x, T) detector columns
        i0 = torch.floor(xd)
        w = (xd - i0).float()
        i0 = i0.long()
        valid = ((i0 >= 0) & (i0 <= Wd - 2)).float()
        i0 = i0.clamp(0, Wd - 2)
        cols = (torch.stack([i0, i0 + 1], -1) + toff).reshape(nz * Wv, 2 * T)
        vals = torch.stack([(1 - w) * valid, w * valid], -1).reshape(nz * Wv, 2 * T)
        crow = torch.arange(0, nz * Wv * 2 * T + 1, 2 * T)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            S = torch.sparse_csr_tensor(crow, cols.reshape(-1), vals.reshape(-1),
                                        size=(nz * Wv, T * Wd))
            vol[z0:z0 + nz] = (S @ stacked).reshape(nz, Wv, H)
    return vol.permute(0, 2, 1).contiguous()


def weighted_backprojection(
    images, tilts_deg, shape_zyx: tuple[int, int, int], *, cosine_weighting: bool = False,
    ctf_sign=None, z_chunk: int = 8, x_offset_px: float = 0.0, oversample: int = 2,
) -> torch.Tensor:
    """WBP tomogram `(D, H, W)` from `(T, H, W_det)` aligned images (see module docstring).

    ``oversample`` upsamples the filtered images along x by Fourier interpolation before the
    linear read-out, which keeps interpolation blur and aliasing out of the passband.
    """
    filt = filter_tilts(images, tilts_deg, cosine_weighting=cosine_weighting, ctf_sign=ctf_sign)
    if oversample > 1:
        # band-limited 2× upsampling along x: linear interpolation then reads a 4× finer grid
        W = filt.shape[-1]
        spec = torch.fft.rfft(filt, dim=-1)
        filt = torch.fft.irfft(spec, n=oversample * W, dim=-1) * oversample
        return backproject(filt, tilts_deg, shape_zyx, z_chunk=z_chunk,
                           x_offset_px=x_offset_px * oversample, x_scale=oversample)
    return backproject(filt, tilts_deg, shape_zyx, z_chunk=z_chunk, x_offset_px=x_offset_px)
