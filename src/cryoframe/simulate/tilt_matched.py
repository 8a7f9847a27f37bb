"""Fast-path subtomograms matched to the full tilt-series path: per-tilt CTF and WBP-coloured noise.

The fast path (:mod:`cryoframe.simulate.fastpath`) models the wedge and the WBP transfer but no
CTF and white noise, whereas SUB5 and users' tomograms come from tilt series with a CTF per tilt
(phase-flipped before reconstruction) and noise that went through the same weighted
back-projection. This module adds both, so pretraining sees the data it is judged on:

* **Signal.** In the full path every tilt image is multiplied by its CTF and then by the sign of
  that CTF (phase flipping), i.e. by ``|CTF(|k|; d_t)|`` with the defocus ``d_t`` of tilt ``t``.
  By the central-slice theorem tilt ``t`` fills the plane of Fourier space whose normal is its
  beam direction; with the tilt axis along y a frequency ``(k_z, k_y, k_x)`` lies on the slice of
  tilt ``θ = atan(k_z / k_x)``. :func:`tilt_ctf_magnitude_rfft` gives every Fourier voxel the
  ``|CTF|`` of the nearest tilt, with a fresh defocus per tilt and per subtomogram (uniform in
  the configured range, as :func:`cryoframe.simulate.tiltseries.simulate_tilt_series` draws it).
  Which sign of ``θ`` a voxel takes does not matter statistically: the defoci are independent
  and identically distributed over tilts.
* **Noise.** The full path reconstructs a unit-variance white tilt series with the same WBP; its
  boxes have a coloured, anisotropic spectrum (ramp-weighted slices, the wedge, gaps between the
  2° slices at high frequency). :func:`wbp_noise_psd_rfft` measures that spectrum by running
  :func:`cryoframe.simulate.reconstruct.weighted_backprojection` itself on white tilt noise
  (a small tomogram, boxes averaged, symmetrised), and :func:`coloured_noise` draws noise with it.

``tests/simulate/test_tilt_matched.py`` compares both with boxes of the full path (shell power of
the signal, anisotropic power spectrum of the noise). Not modelled: neighbouring particles'
streaks, tilt-alignment residuals and the defocus gradient across a tilted image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from cryoframe.fourier.ctf import electron_wavelength_angstrom
from cryoframe.simulate.reconstruct import weighted_backprojection

__all__ = ["TiltGeometry", "nearest_tilt_index_rfft", "tilt_ctf_magnitude_rfft",
           "wbp_noise_psd_rfft", "coloured_noise", "draw_defocus_angstrom"]


@dataclass(frozen=True)
class TiltGeometry:
    """Acquisition of the full path that the fast path imitates (the SUB5 defaults)."""

    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 2.0
    defocus_min_angstrom: float = 30000.0
    defocus_max_angstrom: float = 60000.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    voxel_size_angstrom: float = 10.0

    def tilts_deg(self) -> np.ndarray:
        """`(T,)` tilt angles, ascending."""
        n = int(round((self.tilt_max_deg - self.tilt_min_deg) / self.tilt_step_deg)) + 1
        return np.linspace(self.tilt_min_deg, self.tilt_max_deg, n)


def _rfft_grid(box_px: int) -> tuple[Tensor, Tensor, Tensor]:
    f = torch.fft.fftfreq(box_px, dtype=torch.float64)
    fr = torch.fft.rfftfreq(box_px, dtype=torch.float64)
    return torch.meshgrid(f, f, fr, indexing="ij")


def nearest_tilt_index_rfft(box_px: int, tilts_deg) -> Tensor:
    """`(L, L, L//2+1)` int64 index of the tilt whose central slice holds each Fourier voxel.

    Tilt axis y: the voxel ``(k_z, k_y, k_x)`` lies on the slice of ``θ = atan(k_z / k_x)``
    (``θ ∈ [−90°, 90°]`` on the half spectrum ``k_x ≥ 0``). Voxels in the missing wedge get the
    nearest tilt of the range (the wedge mask zeroes them anyway).
    """
    kz, _, kx = _rfft_grid(box_px)
    theta = torch.rad2deg(torch.atan2(kz, kx))  # kx >= 0 → [-90, 90]
    theta = torch.where((kx == 0) & (kz == 0), torch.zeros_like(theta), theta)
    t = torch.as_tensor(np.asarray(tilts_deg, dtype=np.float64))
    return (theta[..., None] - t).abs().argmin(dim=-1)


def draw_defocus_angstrom(n: int, geometry: TiltGeometry, generator: torch.Generator) -> Tensor:
    """`(n, T)` defocus per subtomogram and tilt, uniform in the geometry's range (Å)."""
    T = len(geometry.tilts_deg())
    u = torch.rand((n, T), generator=generator, dtype=torch.float64)
    return geometry.defocus_min_angstrom + u * (geometry.defocus_max_angstrom
                                                - geometry.defocus_min_angstrom)


def tilt_ctf_magnitude_rfft(box_px: int, geometry: TiltGeometry, defocus_angstrom: Tensor) -> Tensor:
    """`(B, L, L, L//2+1)` float32 ``|CTF|`` of the nearest tilt on each Fourier voxel.

    Parameters
    ----------
    box_px : int
        Box edge ``L``.
    geometry : TiltGeometry
        Tilt range/step, microscope constants and voxel size.
    defocus_angstrom : Tensor
        `(B, T)` defocus per subtomogram and tilt (Å, positive = underfocus), e.g. from
        :func:`draw_defocus_angstrom`.
    """
    tilt_idx = _tilt_index_cached(box_px, tuple(geometry.tilts_deg().round(6)))
    kz, ky, kx = _rfft_grid(box_px)
    k2 = (kz**2 + ky**2 + kx**2) / geometry.voxel_size_angstrom**2  # (Å⁻²)
    lam = electron_wavelength_angstrom(geometry.voltage_kv)
    d = torch.as_tensor(defocus_angstrom, dtype=torch.float64)[:, tilt_idx]  # (B, L, L, h)
    chi = (math.pi * lam * d * k2 - 0.5 * math.pi * geometry.cs_mm * 1e7 * lam**3 * k2**2
           + math.asin(geometry.amplitude_contrast))
    return torch.sin(chi).abs().float()


@lru_cache(maxsize=8)
def _tilt_index_cached(box_px: int, tilts: tuple[float, ...]) -> Tensor:
    return nearest_tilt_index_rfft(box_px, np.asarray(tilts))


@lru_cache(maxsize=8)
def wbp_noise_psd_rfft(box_px: int, geometry: TiltGeometry = TiltGeometry(),
                       n_tomograms: int = 4, seed: int = 0) -> Tensor:
    """`(L, L, L//2+1)` mean power spectrum of boxes of a WBP of unit white tilt noise.

    White tilt images of ``3L × 3L`` pixels are reconstructed into a ``2L × 3L × 3L`` tomogram by
    :func:`~cryoframe.simulate.reconstruct.weighted_backprojection` (the full path's own WBP);
    its 18 non-overlapping ``L³`` boxes per tomogram are averaged over ``n_tomograms`` and
    symmetrised under ``k_z → −k_z`` and ``k_y → −k_y`` (symmetries of a symmetric tilt range
    about y). Normalised to mean 1.
    """
    L = int(box_px)
    tilts = geometry.tilts_deg()
    gen = torch.Generator().manual_seed(int(seed))
    acc = torch.zeros((L, L, L // 2 + 1), dtype=torch.float64)
    count = 0
    for _ in range(n_tomograms):
        images = torch.randn((len(tilts), 3 * L, 3 * L), generator=gen)
        tomo = weighted_backprojection(images, tilts, (2 * L, 3 * L, 3 * L))
        boxes = tomo.reshape(2, L, 3, L, 3, L).permute(0, 2, 4, 1, 3, 5).reshape(-1, L, L, L)
        acc += (torch.fft.rfftn(boxes.double(), dim=(-3, -2, -1)).abs() ** 2).sum(0)
        count += boxes.shape[0]
    psd = acc / count
    psd = 0.5 * (psd + torch.roll(torch.flip(psd, dims=(0,)), 1, dims=0))
    psd = 0.5 * (psd + torch.roll(torch.flip(psd, dims=(1,)), 1, dims=1))
    return (psd / psd.mean()).float()


def coloured_noise(n: int, psd_rfft: Tensor, generator: torch.Generator) -> Tensor:
    """`(n, L, L, L)` float32 noise whose expected power spectrum is ``psd_rfft`` (up to scale)."""
    L = psd_rfft.shape[0]
    white = torch.randn((n, L, L, L), generator=generator)
    spec = torch.fft.rfftn(white, dim=(-3, -2, -1)) * psd_rfft.sqrt()
    return torch.fft.irfftn(spec, s=(L, L, L), dim=(-3, -2, -1))
