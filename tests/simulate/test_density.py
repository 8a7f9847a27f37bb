import math

import numpy as np
import pytest

from cryoframe import InputError
from cryoframe.simulate.density import density_from_atoms, form_factor_coefficients


def _analytic(coords, elements, grid_pts, sigma):
    """Real-space sum of the atoms' Gaussians convolved with the low-pass Gaussian (slow)."""
    out = np.zeros(len(grid_pts))
    for r0, el in zip(coords, elements):
        a, b = form_factor_coefficients(el)
        d2 = ((grid_pts - r0) ** 2).sum(1)
        for ai, bi in zip(a, b):
            beff = bi + 8 * math.pi**2 * sigma**2  # f(s)=a exp(-b s²), s=k/2; low-pass in k
            out += ai * (4 * math.pi / beff) ** 1.5 * np.exp(-4 * math.pi**2 * d2 / beff)
    return out


def test_fourier_route_matches_real_space_gaussians():
    coords = np.array([[3.0, -7.0, 12.0], [-15.0, 8.0, -2.0], [20.0, 20.0, -18.0]])
    els = ["C", "P", "S"]
    d = density_from_atoms(coords, els, centre_zyx_angstrom=np.zeros(3), box_size_px=16,
                           threshold_fraction=0.0)
    L = 16
    ax = (np.arange(L) - L // 2) * 10.0
    pts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    ref = _analytic(coords, els, pts, 15.0)
    ref /= ref.max()
    # residual: aliases of the 2 Å trilinear splat (~1 % of the local spectrum)
    assert np.abs(d.data.reshape(-1) - ref).max() < 5e-3


def test_heavier_atoms_scatter_more_and_threshold():
    d_c = density_from_atoms([[0, 0, 0]], ["C"], threshold_fraction=0.0, box_size_px=12)
    d_p = density_from_atoms([[0, 0, 0], [0, 0, 60.0]], ["C", "P"], threshold_fraction=0.0,
                             centre_zyx_angstrom=np.array([0, 0, 30.0]), box_size_px=16)
    assert d_c.data.max() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(d_c.data), d_c.data.shape) == (6, 6, 6)
    # the P peak is higher than the C peak by roughly the ratio of their Σa
    z, y = 8, 8
    ratio = d_p.data[z, y, 8 + 3] / d_p.data[z, y, 8 - 3]
    a_c, _ = form_factor_coefficients("C")
    a_p, _ = form_factor_coefficients("P")
    assert ratio > 1.5 and ratio == pytest.approx(a_p.sum() / a_c.sum(), rel=0.35)
    d_t = density_from_atoms([[0, 0, 0]], ["C"], box_size_px=12)
    assert d_t.data[d_t.data > 0].min() >= 0.005


def test_real_structure_box_and_normalisation(proteasome):
    v = proteasome.data
    assert v.shape[0] == v.shape[1] == v.shape[2] and v.shape[0] % 2 == 0
    assert v.max() == pytest.approx(1.0) and v.min() == 0.0
    assert 0.05 < (v > 0).mean() < 0.6
    # solvent margin: the outermost layer is empty
    assert v[0].max() == 0 and v[:, :, -1].max() == 0


def test_bad_element_raises():
    with pytest.raises(InputError):
        density_from_atoms([[0, 0, 0]], ["Xx"])
