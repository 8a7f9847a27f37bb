"""Tilt-axis angle / offset refinement (:mod:`cryoframe.simulate.tilt_axis`) on analytic stacks."""

import math

import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.simulate.tilt_axis import (
    axis_reprojection_error,
    correct_tilt_axis,
    refine_tilt_axis,
)
from cryoframe.simulate.tiltseries import tilt_matrices

TILTS = np.arange(-60.0, 60.1, 3.0)


def blob_stack(angle_deg, offset_px, n=80, n_blobs=24, thickness_px=12, seed=0, tilts=TILTS):
    """Exact projections of 3D Gaussian blobs (a Gaussian projects to a Gaussian), with the
    tilt axis rotated in-plane by ``angle_deg`` and displaced by ``offset_px`` along x."""
    rng = np.random.default_rng(seed)
    r = np.stack([rng.uniform(-thickness_px / 2, thickness_px / 2, n_blobs),
                  rng.uniform(-0.38 * n, 0.38 * n, n_blobs),
                  rng.uniform(-0.38 * n, 0.38 * n, n_blobs)], 1)  # zyx, from the centre
    amp, sig = rng.uniform(0.5, 1.5, n_blobs), rng.uniform(1.5, 3.0, n_blobs)
    R = tilt_matrices(tilts).numpy()
    yy, xx = np.mgrid[:n, :n] - n // 2
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    out = np.zeros((len(tilts), n, n), np.float32)
    for t in range(len(tilts)):
        p = r @ R[t].T
        qy = c * p[:, 1] + s * p[:, 2]
        qx = -s * p[:, 1] + c * p[:, 2] + offset_px
        g = np.exp(-((yy[None] - qy[:, None, None])**2 + (xx[None] - qx[:, None, None])**2)
                   / (2 * sig[:, None, None]**2))
        out[t] = (amp[:, None, None] * g).sum(0)
    return torch.from_numpy(out)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_correction_inverts_the_simulated_geometry():
    ref = blob_stack(0.0, 0.0)
    im = blob_stack(1.5, 2.0)
    err = lambda x: float(((x - ref)[:, 8:-8, 8:-8]**2).mean() / (ref**2).mean())  # noqa: E731
    assert err(correct_tilt_axis(im, 1.5, 2.0)) < 1e-5
    assert err(correct_tilt_axis(im, -1.5, 2.0)) > 0.05  # sign of the angle matters
    assert err(im) > 0.1


def test_error_is_zero_only_at_the_true_geometry():
    im = blob_stack(-1.5, 2.0)
    e_true = axis_reprojection_error(im, TILTS, -1.5, 2.0)
    assert e_true < 1e-6
    for a, o in [(0.0, 0.0), (-1.2, 2.0), (-1.8, 2.0), (-1.5, 1.5), (-1.5, 2.5), (1.5, 2.0)]:
        assert axis_reprojection_error(im, TILTS, a, o) > 20 * e_true


@pytest.mark.parametrize("angle_deg,offset_px", [(1.5, 2.0), (-1.5, 2.0), (0.7, -1.3)])
def test_refine_recovers_axis_angle_and_offset(angle_deg, offset_px):
    fit = refine_tilt_axis(blob_stack(angle_deg, offset_px, seed=1), TILTS)
    assert abs(fit.axis_angle_deg - angle_deg) < 0.3
    assert abs(fit.axis_offset_px - offset_px) < 0.5
    assert fit.error < 0.01 * fit.error_uncorrected


def test_refine_without_error_returns_zero():
    fit = refine_tilt_axis(blob_stack(0.0, 0.0, seed=2), TILTS)
    assert abs(fit.axis_angle_deg) < 0.1
    assert abs(fit.axis_offset_px) < 0.2


def test_bad_input_raises():
    with pytest.raises(InputError):
        refine_tilt_axis(torch.zeros(5, 32, 32), TILTS)
    with pytest.raises(InputError):
        axis_reprojection_error(torch.zeros(3, 32, 32), [0.0, 0.0, 0.0])


def test_refine_on_projected_proteasomes(proteasome):
    """Bundled 3J9I density, 4 particles projected by the simulator; the axis error is applied
    by resampling (cubic rotation, Fourier shift), independently of the analytic stacks."""
    from cryoframe.geometry.transforms import rotate_images, shift_images_fourier
    from cryoframe.simulate.scene import make_scene
    from cryoframe.simulate.tiltseries import project_scene

    scene = make_scene((48, 112, 112), 1, n_particles=4, box_size_px=32, seed=0)
    ideal = project_scene(scene, [proteasome], TILTS)
    for angle_deg, offset_px in [(-1.5, 2.0), (0.0, 0.0)]:
        im = rotate_images(ideal, torch.full((len(TILTS),), math.radians(angle_deg)),
                           order="cubic")
        im = shift_images_fourier(im, torch.tensor([0.0, offset_px]))
        fit = refine_tilt_axis(im, TILTS)
        assert abs(fit.axis_angle_deg - angle_deg) < 0.3
        assert abs(fit.axis_offset_px - offset_px) < 0.5


def test_simulate_tomogram_refines_the_axis(proteasome):
    from cryoframe.simulate.config import TomogramConfig
    from cryoframe.simulate.engine import simulate_tomogram

    cfg = TomogramConfig(shape_zyx_px=(48, 96, 96), n_particles=2, drift_std_px=0.0,
                         refine_tilt_axis=True, tilt_step_deg=3.0)
    res = simulate_tomogram([proteasome], cfg, seed=0)
    assert abs(res.tilt_axis.axis_angle_deg) < 0.2  # the simulated axis is exact
    assert abs(res.tilt_axis.axis_offset_px) < 0.3
    assert res.tilt_axis.error < 1e-3
