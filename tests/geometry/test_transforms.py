"""Batched rotations (linear, cubic B-spline) and exact Fourier shifts."""

from __future__ import annotations

import gzip
import math

import mrcfile
import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.data import map_path
from cryoframe.fourier.fsc import fsc
from cryoframe.geometry.rotations import random_rotations, rotation_about
from cryoframe.geometry.transforms import (
    bspline_coefficients,
    rotate_images,
    rotate_volumes,
    sample_at,
    shift_images_fourier,
    shift_volumes_fourier,
)

D = torch.float64


@pytest.fixture(scope="module")
def map32(tmp_path_factory) -> torch.Tensor:
    """Bundled 1BXN density (10 Å/voxel, 52³) cropped to its central 32³."""
    raw = gzip.decompress(map_path("1BXN").read_bytes())
    path = tmp_path_factory.mktemp("maps") / "1bxn.mrc"
    path.write_bytes(raw)
    with mrcfile.open(path, permissive=True) as m:
        data = np.asarray(m.data, dtype=np.float64)
    c = [s // 2 for s in data.shape]
    return torch.from_numpy(data[c[0] - 16:c[0] + 16, c[1] - 16:c[1] + 16,
                                 c[2] - 16:c[2] + 16].copy())


def test_rotation_convention_moves_features_actively():
    vol = torch.zeros(32, 32, 32, dtype=D)
    vol[16, 16, 20] = 1.0  # 4 voxels along +x from the centre
    out = rotate_volumes(vol, rotation_about("z", math.pi / 2))
    assert torch.nonzero(out > 0.5).tolist() == [[16, 20, 16]]  # now along +y
    img = torch.zeros(32, 32, dtype=D)
    img[16, 20] = 1.0
    out2 = rotate_images(img, math.pi / 2, order="cubic")
    assert divmod(int(out2.argmax()), 32) == (20, 16)


def test_integer_rotations_are_exact_permutations(map32):
    r = rotation_about("x", math.pi / 2)
    out = rotate_volumes(map32, r, order="cubic")
    # 90° rotations map grid points onto grid points: out[p] = map[Rᵀ(p − c) + c] exactly
    p = torch.stack(torch.meshgrid(*[torch.arange(32)] * 3, indexing="ij"), -1) - 16
    src = torch.round(p.to(D) @ r).long() + 16
    inside = ((src >= 0) & (src < 32)).all(-1)
    s = src[inside]
    expected = map32[s[:, 0], s[:, 1], s[:, 2]]
    assert torch.allclose(out[inside], expected, atol=1e-6 * float(map32.abs().max()))


@pytest.mark.parametrize("order, min_fsc", [("cubic", 0.99), ("linear", 0.5)])
def test_rotate_then_inverse_keeps_fsc(map32, order, min_fsc):
    r = random_rotations(3, torch.Generator().manual_seed(0), D)
    there = rotate_volumes(map32.expand(3, 32, 32, 32), r, order=order)
    back = rotate_volumes(there, r.transpose(-1, -2), order=order)
    for b in back:
        freq, curve = fsc(b, map32)
        upto = freq <= 0.8 * 0.5 + 1e-9
        assert float(curve[upto].min()) > min_fsc
    if order == "cubic":  # and strictly better than trilinear (measured ~0.995 vs ~0.74)
        lin = rotate_volumes(rotate_volumes(map32, r[0]), r[0].T)
        freq, c_lin = fsc(lin, map32)
        freq, c_cub = fsc(back[0], map32)
        assert float(c_cub[freq <= 0.4].min()) > float(c_lin[freq <= 0.4].min())


def test_cubic_interpolates_samples_and_matches_smooth_function():
    # B-spline prefilter: evaluating at the grid points returns the input
    x = torch.randn(1, 16, 16, dtype=D)
    grid = torch.stack(torch.meshgrid(torch.arange(3, 13.0, dtype=D),
                                      torch.arange(3, 13.0, dtype=D), indexing="ij"), -1)[None]
    assert torch.allclose(sample_at(x, grid, "cubic"), x[:, 3:13, 3:13], atol=1e-6)
    # smooth function evaluated off-grid: cubic error ≪ linear error
    n = 32
    yy, xx = torch.meshgrid(torch.arange(n, dtype=D), torch.arange(n, dtype=D), indexing="ij")
    f = lambda y, x: torch.sin(2 * math.pi * y / 11) * torch.cos(2 * math.pi * x / 9)  # noqa: E731
    img = f(yy, xx)[None]
    pts = torch.rand(1, 200, 2, generator=torch.Generator().manual_seed(3), dtype=D) * 16 + 8
    truth = f(pts[..., 0], pts[..., 1])
    err_c = (sample_at(img, pts, "cubic") - truth).abs().max()
    err_l = (sample_at(img, pts, "linear") - truth).abs().max()
    assert err_c < 0.02 and err_c < err_l / 5


def test_bspline_coefficients_invert_the_bspline_filter():
    x = torch.randn(8, 8, 8, dtype=D)
    c = bspline_coefficients(x, 3)
    # the sampled B-spline kernel is (1, 4, 1)/6 per axis
    y = c
    for dim in range(3):
        y = (torch.roll(y, 1, dim) + 4 * y + torch.roll(y, -1, dim)) / 6
    assert torch.allclose(y, x, atol=1e-10)


def test_broadcasting_and_shapes(map32):
    r = random_rotations(3, torch.Generator().manual_seed(1), D)
    assert rotate_volumes(map32, r).shape == (3, 32, 32, 32)
    assert rotate_volumes(map32, r[0]).shape == (32, 32, 32)
    assert rotate_volumes(map32.expand(3, 32, 32, 32), r[0]).shape == (3, 32, 32, 32)
    assert rotate_images(map32[:2], torch.tensor([0.1, 0.2], dtype=D)).shape == (2, 32, 32)
    identity = rotate_volumes(map32.float(), torch.eye(3), order="cubic")
    assert torch.allclose(identity, map32.float(), atol=1e-3 * float(map32.max()))
    with pytest.raises(InputError):
        rotate_volumes(map32, torch.eye(2))
    with pytest.raises(InputError):
        rotate_volumes(map32, torch.eye(3), order="quintic")  # type: ignore[arg-type]


def test_integer_fourier_shifts_equal_roll():
    g = torch.Generator().manual_seed(4)
    vol = torch.randn(2, 12, 15, 16, generator=g, dtype=D)
    shifts = torch.tensor([[3.0, -2.0, 5.0], [-7.0, 14.0, 0.0]], dtype=D)
    out = shift_volumes_fourier(vol, shifts)
    for i in range(2):
        s = tuple(int(v) for v in shifts[i])
        assert torch.allclose(out[i], torch.roll(vol[i], s, dims=(0, 1, 2)), atol=1e-12)
    img = torch.randn(3, 10, 11, generator=g, dtype=D)
    out2 = shift_images_fourier(img, torch.tensor([4.0, -3.0], dtype=D))
    assert torch.allclose(out2, torch.roll(img, (4, -3), dims=(1, 2)), atol=1e-12)


def test_subpixel_shifts_compose_and_preserve_band_limited_signals():
    n = 32
    x = torch.arange(n, dtype=D)
    wave = torch.cos(2 * math.pi * 3 * x / n)[None, :].expand(n, n)  # band-limited along x
    out = shift_images_fourier(wave, torch.tensor([0.0, 0.37], dtype=D))
    expected = torch.cos(2 * math.pi * 3 * (x - 0.37) / n)[None, :].expand(n, n)
    assert torch.allclose(out, expected, atol=1e-12)
    # odd sizes have no Nyquist bin, so sub-voxel shifts are unitary and compose exactly
    vol = torch.randn(15, 15, 15, dtype=D)
    a = shift_volumes_fourier(shift_volumes_fourier(vol, torch.tensor([0.3, 0.2, -0.6], dtype=D)),
                              torch.tensor([0.7, -1.2, 0.6], dtype=D))
    assert torch.allclose(a, torch.roll(vol, (1, -1, 0), (0, 1, 2)), atol=1e-12)


def test_rotate_images_round_trip_and_matches_volume_rotation(map32):
    img = map32.sum(0)  # projection along z, (y, x)
    ang = torch.tensor([0.4, -1.1, 2.5], dtype=D)
    back = rotate_images(rotate_images(img, ang, "cubic"), -ang, "cubic")
    for b in back:
        freq, ring = fsc(b, img)
        assert float(ring[freq <= 0.4].min()) > 0.99
    # in-plane image rotation = projection of the volume rotated about z
    vol_rot = rotate_volumes(map32, rotation_about("z", 0.4), "cubic").sum(0)
    freq, ring = fsc(vol_rot, rotate_images(img, 0.4, "cubic"))
    assert float(ring[freq <= 0.4].min()) > 0.99


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_kernels_run_on_device(device, map32):
    v = map32.float().to(device)
    r = random_rotations(2, torch.Generator().manual_seed(5)).to(device)
    out = rotate_volumes(v, r, "cubic")
    assert out.device.type == device and out.shape == (2, 32, 32, 32)
    s = shift_volumes_fourier(v, torch.tensor([1.0, 2.0, 3.0], device=device))
    assert torch.allclose(s, torch.roll(v, (1, 2, 3), (0, 1, 2)), atol=1e-3 * float(v.max()))
    freq, curve = fsc(out[0], out[0])
    assert torch.allclose(curve, torch.ones_like(curve))


@pytest.mark.parametrize("shape", [(32, 32, 32), (20, 24, 27)])
def test_linear_fast_path_equals_explicit_index_sampling(shape):
    """The affine-grid trilinear path samples exactly ``vol(Rᵀ(x − c) + c)`` (any box shape)."""
    gen = torch.Generator().manual_seed(3)
    vol = torch.randn(2, *shape, generator=gen)
    rot = random_rotations(2, generator=gen)
    axes = [torch.arange(n, dtype=torch.float32) - n // 2 for n in shape]
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    centre = torch.tensor([n // 2 for n in shape], dtype=torch.float32)
    src = torch.einsum("dhwi,bij->bdhwj", x, rot) + centre
    expected = sample_at(vol, src, "linear")
    assert torch.allclose(rotate_volumes(vol, rot, "linear"), expected, atol=1e-4)
    shared = rotate_volumes(vol[0], rot, "linear")  # one volume, many rotations
    assert torch.allclose(shared, sample_at(vol[:1].expand(2, *shape), src, "linear"), atol=1e-4)
