"""Fast path vs full tilt-series path on the same particles (poses, offsets, tilt range)."""

import numpy as np
import torch

from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.simulate.extract import ground_truth_boxes, rotations_of
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import add_noise, measured_snr
from cryoframe.simulate.projector import FourierProjector
from cryoframe.testing.spectra import wedge_power_ratio


def _fast_twins(extraction, density, tilt_max=60.0):
    t = extraction.table
    off = t[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy()
    sim = FastSubtomogramSimulator([density], 32, -tilt_max, tilt_max)
    return sim.simulate(np.zeros(len(t), int), rotations_of(t), off)


def _res(a, b):
    return resolution_at(*fsc(a, b), 0.5, 10.0)


def test_fast_and_full_paths_match(wedge_60, proteasome):
    ex = wedge_60.extraction
    fast = _fast_twins(ex, proteasome)
    full = ex.volumes
    gt = ground_truth_boxes([proteasome], ex.table)
    # the two paths give the same subtomogram up to the full path's extra artefacts
    cc = [np.corrcoef(a.flatten(), b.flatten())[0, 1] for a, b in zip(fast, full)]
    assert min(cc) > 0.85, cc
    # FSC to ground truth: the same wedge-limited curve up to ~50 Å (shells 1-6 of 32); the full
    # path then falls (truncated WBP streaks, neighbours, alignment residuals; module docs)
    c_fast = np.mean([fsc(a, g)[1].numpy() for a, g in zip(fast, gt)], axis=0)
    c_full = np.mean([fsc(a, g)[1].numpy() for a, g in zip(full, gt)], axis=0)
    assert np.abs(c_fast[1:7] - c_full[1:7]).mean() < 0.06, (c_fast, c_full)
    assert c_fast[1:7].min() > 0.7 and c_full[1:7].min() > 0.7
    # missing wedge: empty in the fast boxes; the full path's tomogram is empty there too
    assert torch.all(wedge_power_ratio(fast) < 0.01)
    assert wedge_power_ratio(wedge_60.tomogram) < 0.05
    # SNR calibration is path-independent
    idx = np.arange(len(fast))
    for vols in (fast, full):
        snr = measured_snr(vols, add_noise(vols, 0.05, 0, idx))
        assert torch.allclose(snr, torch.full_like(snr, 0.05), rtol=0.01)


def test_fast_path_without_wedge_reproduces_the_rotated_density(proteasome):
    from cryoframe.geometry.rotations import random_rotations

    R = random_rotations(6, generator=torch.Generator().manual_seed(3))
    sim = FastSubtomogramSimulator([proteasome], 32, -90, 90, wbp_weighting=False)
    shifts = torch.rand(6, 3) - 0.5
    v = sim.simulate(np.zeros(6, int), R, shifts)
    ref = FourierProjector(proteasome.data).volumes(R, shifts, out_size=32)
    assert torch.allclose(v, ref, atol=2e-2)
    # rotating a ±90° fast subtomogram back gives the density to FSC-0.5 well beyond 3 nm
    d = proteasome.data
    box = torch.zeros(32, 32, 32)
    a = 16 - d.shape[0] // 2
    box[a:a + d.shape[0], a:a + d.shape[0], a:a + d.shape[0]] = torch.from_numpy(d)
    back = FourierProjector(v[0]).volumes(R[0].T[None], (-(R[0].T @ shifts[0]))[None])[0]
    assert _res(back, box) < 25.0


def test_projector_agrees_with_real_space_rotation(proteasome):
    from cryoframe.geometry.rotations import random_rotations
    from cryoframe.geometry.transforms import rotate_volumes

    R = random_rotations(1, generator=torch.Generator().manual_seed(1))
    p = FourierProjector(proteasome.data)
    vf = p.volumes(R)
    vc = rotate_volumes(torch.from_numpy(proteasome.data), R, order="cubic")
    assert float((vf - vc).norm() / vc.norm()) < 0.03
    # projection-slice: the projection equals the z-sum of the rotated volume
    proj = p.project(R)
    assert float((proj - vf.sum(1)).norm() / proj.norm()) < 1e-3


def test_fast_path_accepts_plain_numpy_density():
    """A NumPy array and the DensityMap holding it give the same subtomogram."""
    from cryoframe.simulate.density import load_density
    from cryoframe.simulate.fastpath import FastSubtomogramSimulator

    d = load_density("3QM1")
    rot = torch.eye(3)[None]
    a = FastSubtomogramSimulator([d.data]).simulate([0], rot)
    b = FastSubtomogramSimulator([d]).simulate([0], rot)
    assert a.abs().max() > 0
    assert torch.equal(a, b)
