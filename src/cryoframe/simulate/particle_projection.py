"""Particle image formation: projections of rotated densities (Fourier slice theorem) and the
background-ring normalisation of images.

Conventions: :mod:`cryoframe.simulate.particles2d`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cryoframe._errors import InputError
from cryoframe.geometry.transforms import rotate_volumes, shift_images_fourier


def _fit_box(volume: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop or zero-pad a cubic volume to ``size`` keeping the centre at ``n//2``."""
    d = volume.shape[-1]
    if d == size:
        return volume
    out = volume.new_zeros((size, size, size))
    src0 = max(d // 2 - size // 2, 0)
    dst0 = max(size // 2 - d // 2, 0)
    n = min(d, size)
    out[dst0:dst0 + n, dst0:dst0 + n, dst0:dst0 + n] = \
        volume[src0:src0 + n, src0:src0 + n, src0:src0 + n]
    return out


def _padded_spectrum(volume: torch.Tensor, pad_factor: float) -> torch.Tensor:
    """Centred spectrum of the zero-padded, gridding-corrected volume as `(1, 2, p, p, p)`."""
    d = volume.shape[-1]
    p = int(math.ceil(d * pad_factor / 2.0)) * 2
    vol = _fit_box(volume, p)
    # gridding correction for trilinear interpolation in Fourier space: divide by sinc²(x/p)
    x = (torch.arange(p, dtype=vol.dtype) - p // 2) / p
    s = torch.sinc(x) ** 2
    corr = s[:, None, None] * s[None, :, None] * s[None, None, :]
    vol = vol / corr.clamp_min(1e-3)
    spec = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(vol)))
    return torch.stack([spec.real, spec.imag])[None].contiguous()


def project_volume(
    volume: np.ndarray | torch.Tensor,
    rotations: np.ndarray | torch.Tensor,
    voxel_size_angstrom: float = 1.0,
    box_size_px: int | None = None,
    pixel_size_angstrom: float | None = None,
    shifts_yx_angstrom: np.ndarray | torch.Tensor | None = None,
    method: str = "fourier",
    pad_factor: float = 2.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Project a density along z after rotating it by each pose.

    Parameters
    ----------
    volume : array
        `(d, d, d)` density indexed (z, y, x), centre at ``d//2``.
    rotations : array
        `(n, 3, 3)` active rotations acting on zyx column vectors.
    voxel_size_angstrom : float
        Voxel size of ``volume`` in Å.
    box_size_px : int, optional
        Output box (default ``d``).
    pixel_size_angstrom : float, optional
        Output pixel size in Å (default ``voxel_size_angstrom``). Output frequencies beyond the
        volume's Nyquist are zero.
    shifts_yx_angstrom : array, optional
        `(n, 2)` in-plane shifts in Å (particle centre at box centre + shift).
    method : {"fourier", "real"}
        Fourier-slice extraction (fast) or real-space rotation + sum (reference; needs
        ``pixel_size == voxel_size`` and ``box == d``).
    pad_factor : float
        Zero-padding of the volume before its FFT (Fourier method).
    batch_size : int
        Projections computed per batch.

    Returns
    -------
    Tensor
        `(n, box, box)` float32 projections (line integrals, density × Å), indexed (y, x).
    """
    vol = torch.as_tensor(np.asarray(volume) if not torch.is_tensor(volume) else volume)
    vol = vol.to(torch.float32)
    rots = torch.as_tensor(rotations, dtype=torch.float32)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputError(f"volume must be cubic (d, d, d), got {tuple(vol.shape)}",
                         field="volume", expected="(d, d, d)")
    if rots.ndim != 3 or rots.shape[-2:] != (3, 3):
        raise InputError(f"rotations must be (n, 3, 3), got {tuple(rots.shape)}",
                         field="rotations", expected="(n, 3, 3)")
    d = vol.shape[-1]
    box = int(box_size_px or d)
    pix = float(pixel_size_angstrom or voxel_size_angstrom)
    n = rots.shape[0]
    shifts = None if shifts_yx_angstrom is None else \
        torch.as_tensor(shifts_yx_angstrom, dtype=torch.float32).reshape(n, 2)
    if method == "real":
        if box != d or abs(pix - voxel_size_angstrom) > 1e-6:
            raise InputError("real-space projection needs box == d and pixel == voxel size",
                             field="method", expected="method='fourier' for resampling")

        out = []
        for i in range(0, n, batch_size):
            r = rots[i:i + batch_size]
            rv = rotate_volumes(vol.expand(len(r), d, d, d), r, order="linear")
            out.append(rv.sum(dim=1) * voxel_size_angstrom)
        imgs = torch.cat(out)
        if shifts is not None:
            imgs = shift_images_fourier(imgs, shifts / pix)
        return imgs
    if method != "fourier":
        raise InputError(f"unknown projection method '{method}'", field="method",
                         expected="'fourier' or 'real'")
    # field of view of the output, in volume voxels: crop / pad so nothing wraps around
    fov = int(math.ceil(box * pix / voxel_size_angstrom))
    fov += fov % 2
    vol = _fit_box(vol, max(fov, 2))
    spec = _padded_spectrum(vol, pad_factor)  # (1, 2, p, p, p)
    p = spec.shape[-1]
    m = torch.fft.fftfreq(box) * box  # integer frequency indices, fft layout
    f = m / (box * pix)  # cycles / Å
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    k = torch.stack([torch.zeros_like(fy), fy, fx], dim=-1).reshape(-1, 3)  # (box², 3) zyx
    inband = (k.norm(dim=-1) * voxel_size_angstrom <= 0.5).to(torch.float32)
    scale = voxel_size_angstrom ** 3 / pix ** 2
    mm = m.to(torch.int64)
    checker = (1 - 2 * ((mm[:, None] + mm[None, :]) % 2)).to(torch.float32)  # (−1)^(m_y + m_x)
    out = []
    for i in range(0, n, batch_size):
        r = rots[i:i + batch_size]
        b = r.shape[0]
        kr = torch.einsum("bji,nj->bni", r, k)  # Rᵀ k: (b, box², 3) zyx, cycles/Å
        idx = kr * (p * voxel_size_angstrom) + p // 2  # padded-grid index
        g = 2.0 * idx / (p - 1) - 1.0
        grid = g.flip(-1).reshape(1, b, box * box, 1, 3)  # xyz order for grid_sample
        s = F.grid_sample(spec, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=True)  # (1, 2, b, box², 1)
        s = s[0, :, :, :, 0] * inband  # (2, b, box²)
        sl = torch.complex(s[0], s[1]).reshape(b, box, box) * scale
        if shifts is not None:
            sh = shifts[i:i + b]
            phase = -2.0 * math.pi * (fy[None] * sh[:, 0, None, None] + fx[None] * sh[:, 1, None, None])
            sl = sl * torch.polar(torch.ones_like(phase), phase)
        if box % 2 == 0:  # origin to box//2 by the (−1)^(m_y + m_x) modulation (= fftshift)
            img = torch.fft.ifft2(sl * checker).real
        else:
            img = torch.fft.fftshift(torch.fft.ifft2(sl).real, dim=(-2, -1))
        out.append(img)
    return torch.cat(out).to(torch.float32)






def background_ring_normalise(images: torch.Tensor, bg_radius_fraction: float = 0.75) -> torch.Tensor:
    """Subtract the mean and divide by σ of the pixels outside the particle circle.

    Parameters
    ----------
    images : Tensor
        `(b, s, s)` images.
    bg_radius_fraction : float
        Background = pixels farther than ``bg_radius_fraction · s/2`` from the centre ``s//2``.

    Returns
    -------
    Tensor
        `(b, s, s)` normalised images (background mean 0, σ 1).
    """
    s = images.shape[-1]
    c = torch.arange(s, dtype=torch.float32) - s // 2
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    ring = r > bg_radius_fraction * s / 2
    vals = images[..., ring]  # (b, n_ring)
    mean = vals.mean(dim=-1)
    std = vals.std(dim=-1).clamp_min(1e-6 * (1 + vals.abs().amax(dim=-1)))
    return (images - mean[:, None, None]) / std[:, None, None]
