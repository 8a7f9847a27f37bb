"""cFAR of real reconstructions: preferred views must read anisotropic, uniform views isotropic.

Half maps are reconstructed (:mod:`cryoframe.recon`) from noisy projections with known poses;
the preferred set views the particle only within 20° of one axis, which leaves a 70° cone of
Fourier space around that axis unmeasured.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoframe.fourier.fsc import cfar, cfar_spectra
from cryoframe.geometry.rotations import random_rotations, rotation_about
from cryoframe.recon.halves import finish_half_maps
from cryoframe.recon.insertion import FourierAccumulator
from cryoframe.simulate.density import load_density
from cryoframe.simulate.particles2d import ParticleSimConfig, centre_density, simulate_particles

BOX, PIX, N, SNR = 32, 9.0, 600, 0.5


@pytest.fixture(scope="module")
def volume():
    return centre_density(np.asarray(load_density("1U6G", voxel_size_angstrom=PIX).data,
                                     np.float32))


def _views_near_z(n: int, cone_deg: float, gen: torch.Generator) -> torch.Tensor:
    """Poses whose viewing direction Rᵀ e_z lies within ``cone_deg`` of e_z."""
    cos_t = 1 - torch.rand(n, generator=gen, dtype=torch.float64) * (
        1 - math.cos(math.radians(cone_deg)))
    phi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    psi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    r = rotation_about("z", psi) @ rotation_about("y", torch.arccos(cos_t)) \
        @ rotation_about("z", phi)
    return r.to(torch.float32)


def _reconstruct(volume, rots, gen):
    cfg = ParticleSimConfig(box_size_px=BOX, pixel_size_angstrom=PIX, snr=SNR, ctf=False)
    sim = simulate_particles(volume, PIX, len(rots), cfg, gen, rotations=rots)
    accs = [FourierAccumulator(BOX, 2), FourierAccumulator(BOX, 2)]
    for h, acc in enumerate(accs):
        acc.insert(acc.image_spectra(sim.images[h::2]), rots[h::2])
    return finish_half_maps(accs[0], accs[1], PIX)


def test_cfar_separates_preferred_from_uniform_views(volume):
    po = _reconstruct(volume, _views_near_z(N, 20.0, torch.Generator().manual_seed(5)),
                      torch.Generator().manual_seed(6))
    uni = _reconstruct(volume, random_rotations(N, generator=torch.Generator().manual_seed(7))
                       .to(torch.float32), torch.Generator().manual_seed(8))
    assert po.cfar < 0.15, po.cfar
    assert uni.cfar > 0.5, uni.cfar
    # the maps themselves resolve the particle in both cases (the test is not about noise)
    assert po.resolution_angstrom < 60 and uni.resolution_angstrom < 60


def test_cone_fsc_of_unmeasured_cone_is_zero_before_the_crop():
    """A spectrum with an empty cone gives that cone no area; the cropped map would not."""
    n = 24
    gen = torch.Generator().manual_seed(3)
    spec = torch.fft.rfftn(torch.randn(n, n, n, generator=gen, dtype=torch.float64))
    k = torch.stack(torch.meshgrid(torch.fft.fftfreq(n), torch.fft.fftfreq(n),
                                   torch.fft.rfftfreq(n), indexing="ij"), -1).double()
    r = k.norm(dim=-1)
    near_z = (k[..., 0].abs() >= math.cos(math.radians(70)) * r) & (r > 0)
    shared = spec * torch.exp(-(r * n / 6) ** 2)  # a smooth shared "structure"
    n1 = torch.fft.rfftn(torch.randn(n, n, n, generator=gen, dtype=torch.float64)) * 0.05
    n2 = torch.fft.rfftn(torch.randn(n, n, n, generator=gen, dtype=torch.float64)) * 0.05
    s1 = torch.where(near_z, torch.zeros_like(spec), shared + n1)
    s2 = torch.where(near_z, torch.zeros_like(spec), shared + n2)
    res = cfar_spectra(s1, s2)
    assert res.cfar < 0.05
    assert res.min_shell >= 2  # shells where some 20° cone holds < 4 voxels are left out
    full = cfar_spectra(shared + n1, shared + n2)
    assert full.cfar > 0.6
    # the same half maps through the map route agree when nothing is cut or masked
    m1 = torch.fft.irfftn(shared + n1, s=(n, n, n))
    m2 = torch.fft.irfftn(shared + n2, s=(n, n, n))
    assert cfar(m1, m2).cfar == pytest.approx(full.cfar, abs=1e-6)
