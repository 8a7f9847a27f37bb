"""Batched rotation and translation of volumes and images.

Rotations resample ``particle(x) = reference(Rᵀ (x − c) + c)`` with ``c = n // 2`` per axis
(see :mod:`cryoframe.geometry`); voxels sampled from outside the box read 0.

Interpolation orders
    ``"linear"``: trilinear / bilinear (``torch.nn.functional.grid_sample``).
    ``"cubic"``: cubic B-spline interpolation. The input is first converted to B-spline
    coefficients by exact Fourier-domain division by the sampled cubic B-spline transfer
    function ``H(f) = (4 + 2 cos 2πf) / 6`` per axis (after zero-padding by 8 voxels, where
    the recursive filter's impulse response has decayed to ≈ 3e-5), then evaluated with 8
    (3D) or 4 (2D) linear texture look-ups whose positions and weights reproduce the 4-tap
    B-spline weights exactly (Sigg & Hadwiger, GPU Gems 2, ch. 20). The result interpolates the
    input samples and is C² smooth.

Shifts
    ``shift_*_fourier`` multiply the rfft by ``exp(−2πi k·s)``: ``out(x) = in(x − s)`` with
    periodic boundaries. For integer shifts this equals ``torch.roll(in, s)`` to rounding error.
"""

from __future__ import annotations

import functools
import itertools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.grids import fftfreq_grid

__all__ = [
    "wedge_preserving_rotations",
    "rotate_volumes",
    "rotate_images",
    "shift_volumes_fourier",
    "shift_images_fourier",
    "bspline_coefficients",
    "sample_at",
]

_PAD = 8
Order = Literal["linear", "cubic"]


def bspline_coefficients(x: Tensor, ndim: int) -> Tensor:
    """Cubic B-spline coefficients of the last ``ndim`` axes (periodic, exact in Fourier).

    Parameters
    ----------
    x : Tensor
        `(..., *spatial)` real samples.
    ndim : int
        Number of trailing spatial axes.

    Returns
    -------
    Tensor
        Coefficients with the same shape, such that the cubic B-spline through them
        interpolates ``x`` at the grid points.
    """
    dims = tuple(range(-ndim, 0))
    spec = torch.fft.rfftn(x, dim=dims)
    shape = x.shape[-ndim:]
    denom = torch.ones(spec.shape[-ndim:], dtype=x.dtype, device=x.device)
    grid = fftfreq_grid(shape, rfft=True, dtype=x.dtype, device=x.device)
    for i in range(ndim):
        denom = denom * (4 + 2 * torch.cos(2 * torch.pi * grid[..., i])) / 6
    return torch.fft.irfftn(spec / denom, s=shape, dim=dims)


def _linear(coef: Tensor, coords: Tensor) -> Tensor:
    """Linear interpolation of `(B, *S)` at index coords `(B, *So, nd)` (zyx), zeros outside."""
    nd = coords.shape[-1]
    out_shape = coords.shape[:-1]
    sizes = torch.tensor(coef.shape[1:], dtype=coords.dtype, device=coords.device)
    norm = 2 * coords / (sizes - 1).clamp_min(1) - 1
    grid = torch.flip(norm, dims=(-1,))  # grid_sample wants (x, y[, z])
    grid = grid.reshape(coords.shape[0], -1, *([1] * (nd - 1)), nd)  # (B, N, 1[, 1], nd)
    out = F.grid_sample(coef[:, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)  # (B, 1, N, 1[, 1])
    return out.reshape(out_shape)


def _bspline_weights(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    i0 = torch.floor(t)
    a = t - i0
    a2, a3 = a * a, a * a * a
    w0 = (1 - a) ** 3 / 6
    w1 = (3 * a3 - 6 * a2 + 4) / 6
    w2 = (-3 * a3 + 3 * a2 + 3 * a + 1) / 6
    w3 = a3 / 6
    g0, g1 = w0 + w1, w2 + w3
    h0 = i0 - 1 + w1 / g0
    h1 = i0 + 1 + w3 / g1
    return g0, g1, h0, h1


def sample_at(x: Tensor, coords_px: Tensor, order: Order = "linear") -> Tensor:
    """Interpolate a batch of 2D/3D arrays at fractional index coordinates.

    Parameters
    ----------
    x : Tensor
        `(B, *S)` real arrays with ``len(S)`` = 2 (yx) or 3 (zyx); ``B`` may be 1 with any
        number of coordinate batches (the array is then shared, not copied).
    coords_px : Tensor
        `(B, *So, nd)` sampling positions in voxel index units, zyx (or yx) order.
    order : {"linear", "cubic"}
        Interpolation order (see module docstring).

    Returns
    -------
    Tensor
        `(B, *So)` samples; 0 outside the array.
    """
    nd = coords_px.shape[-1]
    if nd not in (2, 3) or x.dim() != nd + 1:
        raise InputError(f"cannot sample {x.dim() - 1}-D arrays at {nd}-D coordinates",
                         field="coords", expected="2D or 3D arrays with matching coordinates")
    if x.shape[0] == 1 and coords_px.shape[0] > 1:  # one array, many coordinate sets
        flat = coords_px.reshape(1, -1, nd)
        return sample_at(x, flat, order).reshape(coords_px.shape[:-1])
    if x.shape[0] != coords_px.shape[0]:
        raise InputError(f"batch sizes differ: {x.shape[0]} arrays, {coords_px.shape[0]} "
                         "coordinate sets", field="coords", expected="equal or 1 array")
    if order == "linear":
        return _linear(x, coords_px)
    if order != "cubic":
        raise InputError(f"unknown interpolation order {order!r}", field="order",
                         expected="'linear' or 'cubic'")
    padded = F.pad(x, (_PAD,) * (2 * nd))
    coef = bspline_coefficients(padded, nd)
    t = coords_px + _PAD
    per_axis = [_bspline_weights(t[..., i]) for i in range(nd)]
    out = torch.zeros(coords_px.shape[:-1], dtype=x.dtype, device=x.device)
    for choice in itertools.product((0, 1), repeat=nd):
        weight = torch.ones_like(out)
        pos = []
        for i, c in enumerate(choice):
            g0, g1, h0, h1 = per_axis[i]
            weight = weight * (g0 if c == 0 else g1)
            pos.append(h0 if c == 0 else h1)
        out = out + weight * _linear(coef, torch.stack(pos, dim=-1))
    return out


def _centered_grid(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    axes = [torch.arange(n, dtype=dtype, device=device) - n // 2 for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*S, nd)


def rotate_volumes(vol: Tensor, rotations: Tensor, order: Order = "linear") -> Tensor:
    """Rotate volumes actively about their centre: ``out(x) = vol(Rᵀ (x − c) + c)``.

    Parameters
    ----------
    vol : Tensor
        `(B, D, H, W)` or `(D, H, W)` real volumes, zyx.
    rotations : Tensor
        `(B, 3, 3)` or `(3, 3)` zyx-acting rotations (broadcast against the volume batch).
    order : {"linear", "cubic"}
        Interpolation order.

    Returns
    -------
    Tensor
        `(B, D, H, W)`, or `(D, H, W)` when both inputs are unbatched.
    """
    v = as_float_tensor(vol)
    r = as_float_tensor(rotations).to(dtype=v.dtype, device=v.device)
    if v.dim() not in (3, 4) or r.dim() not in (2, 3) or r.shape[-2:] != (3, 3):
        raise InputError(f"got volume {tuple(v.shape)} and rotations {tuple(r.shape)}",
                         field="vol", expected="(B, D, H, W) or (D, H, W) and (B, 3, 3) or (3, 3)")
    squeeze = v.dim() == 3 and r.dim() == 2
    v4 = v if v.dim() == 4 else v[None]
    r3 = r if r.dim() == 3 else r[None]
    b = max(v4.shape[0], r3.shape[0])
    if v4.shape[0] not in (1, b) or r3.shape[0] not in (1, b):
        raise InputError(f"batch sizes differ: {v4.shape[0]} volumes, {r3.shape[0]} rotations",
                         field="rotations", expected="equal batch sizes or one of them 1")
    shape = tuple(v4.shape[1:])
    if order == "linear":
        return _rotate_linear_affine(v4, r3, b, squeeze)
    x = _centered_grid(shape, v.dtype, v.device)  # (D, H, W, 3)
    centre = torch.tensor([n // 2 for n in shape], dtype=v.dtype, device=v.device)
    src = torch.einsum("dhwi,bij->bdhwj", x, r3) + centre  # (B', D, H, W, 3)
    if src.shape[0] != b:
        src = src.expand(b, *src.shape[1:])
    out = sample_at(v4.contiguous(), src, order)
    return out[0] if squeeze else out


@functools.lru_cache(maxsize=8)
def _homogeneous_grid_xyz1(shape: tuple[int, ...], dtype: torch.dtype,
                           device: torch.device) -> Tensor:
    """`(D·H·W, 4)` normalised (x, y, z, 1) voxel positions (cached: aligners rotate the same
    box size thousands of times; the result is only read).
    """
    axes = [torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device) for n in shape]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([xx, yy, zz, torch.ones_like(xx)], -1).reshape(-1, 4)


def _rotate_linear_affine(v4: Tensor, r3: Tensor, b: int, squeeze: bool) -> Tensor:
    """Trilinear rotation through ``F.affine_grid``: the same map as the generic path.

    In grid_sample's normalised coordinates ``u = s ⊙ i − 1`` (``s = 2 / (n − 1)`` per axis,
    ``align_corners=True``) the index map ``i_src = Rᵀ (i − c) + c`` becomes
    ``u_src = A u + (I − A)(s ⊙ c − 1)`` with ``A = diag(s) Rᵀ diag(s)⁻¹``; the axes are then
    reversed to grid_sample's (x, y, z) order. This avoids building, rescaling and flipping a
    `(B, D, H, W, 3)` index grid per call (about 1.7× faster on CPU).
    """
    shape = v4.shape[1:]
    dt, dev = v4.dtype, v4.device
    sizes = torch.tensor(shape, dtype=dt, device=dev)
    s = 2.0 / (sizes - 1).clamp_min(1)
    centre = torch.tensor([n // 2 for n in shape], dtype=dt, device=dev)
    a = s[:, None] * r3.transpose(-1, -2) / s[None, :]                    # (B', 3, 3) zyx
    off = (torch.eye(3, dtype=dt, device=dev) - a) @ (s * centre - 1)      # (B', 3)
    theta = torch.cat([a.flip(-1).flip(-2), off.flip(-1)[..., None]], -1)  # xyz order
    base = _homogeneous_grid_xyz1(tuple(shape), dt, dev)
    # One matmul per batch (faster on CPU than F.affine_grid, identical values).
    grid = torch.matmul(base, theta.expand(b, 3, 4).transpose(1, 2)).reshape(b, *shape, 3)
    src = v4 if v4.shape[0] == b else v4.expand(b, *shape)
    out = F.grid_sample(src[:, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)[:, 0]
    return out[0] if squeeze else out


def rotate_images(img: Tensor, angles_rad: Tensor | float, order: Order = "linear") -> Tensor:
    """Rotate images in-plane about their centre ``(h // 2, w // 2)``.

    A positive angle turns ``x`` towards ``y`` (counter-clockwise with y up), the in-plane
    part of :func:`cryoframe.geometry.rotations.rotation_about` ``("z", angle)``.

    Parameters
    ----------
    img : Tensor
        `(B, H, W)` or `(H, W)` real images, yx.
    angles_rad : Tensor or float
        `(B,)` or scalar angles in radians.
    order : {"linear", "cubic"}
        Interpolation order.

    Returns
    -------
    Tensor
        `(B, H, W)`, or `(H, W)` when both inputs are unbatched.
    """
    im = as_float_tensor(img)
    ang = as_float_tensor(angles_rad).to(dtype=im.dtype, device=im.device)
    if im.dim() not in (2, 3) or ang.dim() > 1:
        raise InputError(f"got images {tuple(im.shape)} and angles {tuple(ang.shape)}",
                         field="img", expected="(B, H, W) or (H, W) and (B,) or scalar angles")
    squeeze = im.dim() == 2 and ang.dim() == 0
    im3 = im if im.dim() == 3 else im[None]
    ang1 = ang.reshape(-1)
    b = max(im3.shape[0], ang1.shape[0])
    if im3.shape[0] not in (1, b) or ang1.shape[0] not in (1, b):
        raise InputError("batch sizes of images and angles differ", field="angles_rad",
                         expected="equal batch sizes or one of them 1")
    c, s = torch.cos(ang1), torch.sin(ang1)
    r = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # (b', 2, 2) yx
    shape = tuple(im3.shape[1:])
    x = _centered_grid(shape, im.dtype, im.device)
    centre = torch.tensor([n // 2 for n in shape], dtype=im.dtype, device=im.device)
    src = torch.einsum("hwi,bij->bhwj", x, r) + centre
    if src.shape[0] != b:
        src = src.expand(b, *src.shape[1:])
    out = sample_at(im3.contiguous(), src, order)
    return out[0] if squeeze else out


def _shift_fourier(x: Tensor, shifts: Tensor, nd: int) -> Tensor:
    x = as_float_tensor(x)
    if x.is_complex() or x.dim() < nd:
        raise InputError(f"expected real (..., {'D, ' if nd == 3 else ''}H, W) data, got "
                         f"{tuple(x.shape)} {x.dtype}", field="x", expected=f"real {nd}-D arrays")
    s = as_float_tensor(shifts).to(dtype=x.dtype, device=x.device)
    if s.shape[-1] != nd:
        raise InputError(f"shifts must have last dimension {nd}, got {tuple(s.shape)}",
                         field="shifts", expected=f"(..., {nd}) in pixels")
    dims = tuple(range(-nd, 0))
    shape = x.shape[-nd:]
    k = fftfreq_grid(shape, rfft=True, dtype=x.dtype, device=x.device)  # (*S_rfft, nd)
    s_b = s.reshape(*s.shape[:-1], *([1] * nd), nd)
    phase = (k * s_b).sum(-1)  # (..., *S_rfft)
    spec = torch.fft.rfftn(x, dim=dims) * torch.polar(torch.ones_like(phase), -2 * torch.pi * phase)
    return torch.fft.irfftn(spec, s=shape, dim=dims)


def shift_volumes_fourier(vol: Tensor, shifts_zyx_px: Tensor) -> Tensor:
    """Sub-voxel periodic shift of volumes by Fourier phase ramps: ``out(x) = vol(x − s)``.

    Parameters
    ----------
    vol : Tensor
        `(..., D, H, W)` real volumes.
    shifts_zyx_px : Tensor
        `(..., 3)` shifts in voxels (zyx), broadcast against the leading dims of ``vol``.

    Returns
    -------
    Tensor
        Shifted volumes, shape broadcast of the two leading shapes plus `(D, H, W)`.
    """
    return _shift_fourier(vol, shifts_zyx_px, 3)


def shift_images_fourier(img: Tensor, shifts_yx_px: Tensor) -> Tensor:
    """Sub-pixel periodic shift of images: ``out(x) = img(x − s)``.

    Parameters
    ----------
    img : Tensor
        `(..., H, W)` real images.
    shifts_yx_px : Tensor
        `(..., 2)` shifts in pixels (yx).

    Returns
    -------
    Tensor
        Shifted images.
    """
    return _shift_fourier(img, shifts_yx_px, 2)


def wedge_preserving_rotations(volumes: Tensor) -> list[Tensor]:
    """The four proper rotations about the box centre that keep a tilt-axis-y wedge a wedge.

    Identity and the 180° turns about z, y and x (``(z, y, x) → (z, −y, −x)``, ``(−z, y, −x)``,
    ``(−z, −y, x)``) map the missing wedge of a tilt series about y with the beam along z onto
    itself, so the turned subtomograms are as a tomogram would have given them. Exact index
    permutations about voxel ``n // 2`` (a flip, then a roll by one voxel for even ``n``).

    Parameters
    ----------
    volumes : Tensor
        `(..., D, H, W)` volumes.

    Returns
    -------
    list of Tensor
        Four tensors of the same shape, the identity first.
    """
    out = [volumes]
    for dims in ((-2, -1), (-3, -1), (-3, -2)):
        f = torch.flip(volumes, dims)
        shifts = [1 if volumes.shape[d] % 2 == 0 else 0 for d in dims]
        out.append(torch.roll(f, shifts=shifts, dims=dims))
    return out
