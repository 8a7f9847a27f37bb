"""Full tilt-series path on a small tomogram (160×160×96 voxels, 10 Å)."""

import numpy as np
import torch

from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.simulate.extract import ground_truth_boxes, rotations_of
from cryoframe.simulate.projector import FourierProjector
from cryoframe.testing.spectra import wedge_power_ratio  # noqa: E402


def _reference_box(density, L=32):
    out = np.zeros((L, L, L), np.float32)
    d = density.data
    n = d.shape[0]
    a = L // 2 - n // 2
    out[a:a + n, a:a + n, a:a + n] = d
    return torch.from_numpy(out)


def _rotated_back(vols, table):
    """Undo offset then pose, ``ref(y) = box(R(y − c) + c + s)``, by 2×-padded Fourier
    interpolation (a real-space cubic B-spline aliases low-frequency power into the weak
    high-frequency shells that the 3 nm criterion tests)."""
    off = torch.as_tensor(table[["offset_z_px", "offset_y_px", "offset_x_px"]].to_numpy().copy(),
                          dtype=torch.float32)
    R = torch.as_tensor(rotations_of(table).copy(), dtype=torch.float32)
    out = []
    for v, r, s in zip(vols, R, off):
        out.append(FourierProjector(v).volumes(r.T[None], (-(r.T @ s))[None])[0])
    return torch.stack(out)


def test_noise_free_full_range_matches_ground_truth_to_3nm(full_range, proteasome):
    ex = full_range.extraction
    assert len(ex.table) >= 3
    back = _rotated_back(ex.volumes, ex.table)
    ref = _reference_box(proteasome)
    res = []
    for v in back:
        freq, curve = fsc(v, ref)
        res.append(resolution_at(freq, curve, 0.5, 10.0))
    assert np.median(res) <= 30.0, res
    assert max(res) <= 33.0, res


def test_boxes_hold_the_particle_at_the_recorded_offset(full_range, proteasome):
    ex = full_range.extraction
    gt = ground_truth_boxes([proteasome], ex.table)
    for v, g in zip(ex.volumes, gt):
        assert np.corrcoef(v.flatten(), g.flatten())[0, 1] > 0.9
    assert ex.masks.float().mean() > 0.03
    # the mask covers the particle's density
    inside = (gt * ex.masks).sum() / gt.sum()
    assert inside > 0.9


def test_missing_wedge_power_below_5_percent(wedge_60):
    # the ±60° reconstruction (WBP of the aligned, drifted series) leaves the wedge empty
    ratio = wedge_power_ratio(wedge_60.tomogram)
    assert ratio < 0.05, ratio
    # a boxed subtomogram cuts the particle's own X-shaped WBP streaks at the box edge, which
    # spreads power into the wedge (measured 6–19 % here); it must stay well below the 1:1
    # of a wedge-free box
    boxed = wedge_power_ratio(wedge_60.extraction.volumes)
    assert torch.all(boxed < 0.3), boxed
    full = wedge_power_ratio(wedge_60.extraction.volumes, 90.0)  # sanity: ±90 has no wedge
    assert torch.all(torch.isnan(full) | (full > 0)), full


def test_alignment_recovers_drift(wedge_60):
    ts, al = wedge_60.tilt_series, wedge_60.alignment
    err = np.abs(al.shifts_yx_px - ts.drift_yx_px)
    # sub-pixel residuals of a cumulative chain; well below the drift itself
    assert err.mean() < 0.6 * np.abs(ts.drift_yx_px).mean(), (err.mean(), np.abs(ts.drift_yx_px).mean())
    assert np.median(err) < 0.3
