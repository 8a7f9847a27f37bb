"""2D cryo-EM particle images: projections of rotated densities with CTF and calibrated noise.

This module holds the simulation (config, :func:`simulate_particles`,
:func:`simulate_particle_stack`); the density loading and centring live in
:mod:`.particle_density`, projection and normalisation in :mod:`.particle_projection`, viewing
directions in :mod:`.particle_views` and stack writing in :mod:`.particle_stack` (their names
are re-exported here).

Physics and conventions
-----------------------
* A particle with pose ``R`` (active, zyx) is the reference rotated by ``R`` and projected along
  the beam (z): ``image(y, x) = ∫ V(Rᵀ (r − c) + c) dz`` with ``r = (z, y, x)``. By the Fourier
  slice theorem its 2D spectrum at ``(k_y, k_x)`` is the 3D spectrum of the reference at
  ``Rᵀ (0, k_y, k_x)``; :func:`project_volume` samples it there (trilinear interpolation in a
  2×-padded spectrum, with the gridding correction ``1/sinc²`` applied to the volume first).
  The viewing direction of a particle (the beam in reference coordinates) is ``Rᵀ e_z``.
* Projections are line integrals in (density unit × Å), so images at different pixel sizes are
  comparable. The output box and pixel size are free: the volume is cropped / zero-padded in real
  space to the output field of view before projection.
* CTF: :func:`cryoframe.fourier.ctf.ctf_2d` (RELION convention: positive defocus = underfocus,
  CTF = −sin γ, so protein appears dark at low frequency) multiplies the spectrum of the
  projection at ``oversample ×`` the output sampling; noise is added there and the result is
  Fourier-cropped to the output box (as real data are extracted and binned). With
  ``invert_contrast=True`` (default) the CTF-modulated images are multiplied by −1, so protein is
  white as in particles extracted by RELION / cryoSPARC with contrast inversion (the physical
  image has protein dark); :func:`cryoframe.particles` expects that convention.
* ``oversample = k > 1`` simulates at k× the sampling and Fourier-crops. For densities
  band-limited below the output Nyquist (the bundled 10 Å maps carry nothing beyond 1/20 Å⁻¹,
  and output pixels are < 10 Å) this is identical to direct simulation (CTF and white noise
  act per frequency), so the default is 1.
* SNR = Var(signal) / Var(noise) per output image, computed on the final (cropped) images, with
  the noise scaled per image so the ratio is exact.
* Shifts: ``shifts_yx_angstrom`` is the particle centre minus the box centre; in STAR files it
  is written as ``rlnOriginX/YAngst = −shift`` (the convention of :mod:`cryoframe.io.star`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, PositiveFloat, PositiveInt

from cryoframe._config import FrozenConfig
from cryoframe._errors import InputError
from cryoframe.fourier.ctf import ctf_2d
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import random_rotations
from cryoframe.simulate.noise import combine_signal_noise
from cryoframe.simulate.particle_density import (
    centre_density,
    longest_diameter_angstrom,
    read_density_volume,
)
from cryoframe.simulate.particle_projection import (
    background_ring_normalise,
    project_volume,
)
from cryoframe.simulate.particle_stack import write_particle_stack
from cryoframe.simulate.particle_views import (
    viewing_direction_classes,
    viewing_directions,
)

__all__ = [
    "ParticleSimConfig",
    "SimulatedParticles",
    "read_density_volume",
    "longest_diameter_angstrom",
    "centre_density",
    "project_volume",
    "simulate_particles",
    "simulate_particle_stack",
    "viewing_directions",
    "viewing_direction_classes",
    "background_ring_normalise",
]


# --------------------------------------------------------------------------------------------
# simulation


class ParticleSimConfig(FrozenConfig):
    """Parameters of simulated particle images (all lengths in Å)."""

    box_size_px: PositiveInt = 64
    pixel_size_angstrom: PositiveFloat | None = Field(
        None, description="None: box = box_factor × longest diameter of the density")
    box_factor: PositiveFloat = 1.6
    snr: PositiveFloat | None = Field(0.1, description="Var(signal)/Var(noise); None = no noise")
    defocus_min_angstrom: float = 10_000.0
    defocus_max_angstrom: float = 30_000.0
    astigmatism_max_angstrom: float = 500.0
    voltage_kv: PositiveFloat = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    b_factor_angstrom2: float = 0.0
    ctf: bool = True
    invert_contrast: bool = True
    shift_sigma_angstrom: float = 0.0
    oversample: PositiveInt = Field(
        1, description="simulate at oversample × box (CTF and noise there), then Fourier-crop")


@dataclass
class SimulatedParticles:
    """A simulated stack and its ground truth.

    Attributes
    ----------
    images : Tensor
        `(n, b, b)` float32 noisy images (y, x).
    clean : Tensor
        `(n, b, b)` the CTF-modulated noise-free images (same scale as ``images``).
    rotations : Tensor
        `(n, 3, 3)` poses.
    shifts_yx_angstrom : Tensor
        `(n, 2)` particle centre offset from the box centre.
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_deg : Tensor
        `(n,)` CTF parameters (RELION convention).
    pixel_size_angstrom : float
        Output pixel size.
    """

    images: torch.Tensor
    clean: torch.Tensor
    rotations: torch.Tensor
    shifts_yx_angstrom: torch.Tensor
    defocus_u_angstrom: torch.Tensor
    defocus_v_angstrom: torch.Tensor
    defocus_angle_deg: torch.Tensor
    pixel_size_angstrom: float
    config: ParticleSimConfig


def _apply_ctf(images: torch.Tensor, pixel_size_angstrom: float, du: torch.Tensor,
               dv: torch.Tensor, ang: torch.Tensor, cfg: ParticleSimConfig) -> torch.Tensor:

    b = images.shape[-1]
    ctf = ctf_2d((b, b), pixel_size_angstrom, du, dv, ang, voltage_kv=cfg.voltage_kv,
                 cs_mm=cfg.cs_mm, amplitude_contrast=cfg.amplitude_contrast,
                 b_factor_angstrom2=cfg.b_factor_angstrom2, rfft=True)
    if cfg.invert_contrast:
        ctf = -ctf
    # a real, per-frequency filter commutes with circular shifts: no (i)fftshift needed
    return torch.fft.irfft2(torch.fft.rfft2(images) * ctf, s=(b, b))


def simulate_particles(
    volume: np.ndarray | torch.Tensor,
    voxel_size_angstrom: float,
    n_particles: int,
    config: ParticleSimConfig | None = None,
    generator: torch.Generator | None = None,
    rotations: torch.Tensor | None = None,
    batch_size: int = 256,
) -> SimulatedParticles:
    """Simulate particle images of one density in memory.

    Parameters
    ----------
    volume : array
        `(d, d, d)` density (z, y, x) with the particle near the box centre.
    voxel_size_angstrom : float
        Voxel size in Å.
    n_particles : int
        Number of images.
    config : ParticleSimConfig, optional
        Box, pixel size, CTF, SNR; defaults as in :class:`ParticleSimConfig`.
    generator : torch.Generator, optional
        Source of every random draw (poses, defocus, shifts, noise).
    rotations : Tensor, optional
        `(n, 3, 3)` poses; uniform on SO(3) (Shoemake) when omitted.
    batch_size : int
        Images per batch.

    Returns
    -------
    SimulatedParticles
    """
    cfg = config or ParticleSimConfig()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    vol = np.asarray(volume.detach().cpu() if torch.is_tensor(volume) else volume, np.float32)
    n = int(n_particles)
    if rotations is None:

        rotations = random_rotations(n, generator=gen)
    rotations = torch.as_tensor(rotations, dtype=torch.float32)
    if rotations.shape != (n, 3, 3):
        raise InputError(f"rotations must be ({n}, 3, 3), got {tuple(rotations.shape)}",
                         field="rotations")
    box = cfg.box_size_px
    if cfg.pixel_size_angstrom is None:
        diam = longest_diameter_angstrom(vol, voxel_size_angstrom)
        pix = cfg.box_factor * diam / box
    else:
        pix = float(cfg.pixel_size_angstrom)
    os_ = cfg.oversample
    box_os, pix_os = box * os_, pix / os_
    du = cfg.defocus_min_angstrom + (cfg.defocus_max_angstrom - cfg.defocus_min_angstrom) * \
        torch.rand(n, generator=gen)
    astig = cfg.astigmatism_max_angstrom * torch.rand(n, generator=gen)
    dv = du - astig
    ang = 180.0 * torch.rand(n, generator=gen)
    shifts = cfg.shift_sigma_angstrom * torch.randn(n, 2, generator=gen)
    images, cleans = [], []
    for i in range(0, n, batch_size):
        sl = slice(i, min(i + batch_size, n))
        proj = project_volume(vol, rotations[sl], voxel_size_angstrom, box_os, pix_os,
                              shifts[sl] if cfg.shift_sigma_angstrom > 0 else None)
        if cfg.ctf:
            proj = _apply_ctf(proj, pix_os, du[sl], dv[sl], ang[sl], cfg)
        clean = fourier_crop(proj, (box, box)) if os_ > 1 else proj
        if cfg.snr is None:
            images.append(clean)
        else:
            noise = torch.randn(proj.shape, generator=gen)
            noise = fourier_crop(noise, (box, box)) if os_ > 1 else noise
            images.append(combine_signal_noise(clean, noise, cfg.snr, correction=1))
        cleans.append(clean)
    return SimulatedParticles(
        images=torch.cat(images).to(torch.float32), clean=torch.cat(cleans).to(torch.float32),
        rotations=rotations, shifts_yx_angstrom=shifts, defocus_u_angstrom=du,
        defocus_v_angstrom=dv, defocus_angle_deg=ang, pixel_size_angstrom=float(pix), config=cfg)


def simulate_particle_stack(
    source: str | Path | np.ndarray,
    n_particles: int,
    out_star: str | Path | None = None,
    config: ParticleSimConfig | None = None,
    seed: int = 0,
    voxel_size_angstrom: float | None = None,
    centre: bool = True,
    **overrides: object,
) -> SimulatedParticles:
    """Simulate a particle stack and (optionally) write it as MRCS + RELION STAR.

    Parameters
    ----------
    source : str, Path or numpy.ndarray
        Bundled map ID (``"1BXN"``), path to an MRC map, or a `(d, d, d)` array (then
        ``voxel_size_angstrom`` is required).
    n_particles : int
        Number of images.
    out_star : str or Path, optional
        Where to write the STAR file; the stack goes next to it as ``<stem>.mrcs``. Poses are
        written as RELION Euler angles (rlnAngleRot/Tilt/Psi), shifts as rlnOriginX/YAngst, CTF
        parameters per particle and an optics group with the pixel size.
    config : ParticleSimConfig, optional
        Simulation parameters; ``overrides`` replace individual fields.
    seed : int
        Seed of every random draw.
    voxel_size_angstrom : float, optional
        Voxel size for an array ``source``.
    centre : bool
        Move the density's centre of mass to the box centre first.

    Returns
    -------
    SimulatedParticles
    """
    cfg = config or ParticleSimConfig()
    if overrides:
        cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        cfg = ParticleSimConfig.model_validate(cfg.model_dump())
    if isinstance(source, np.ndarray):
        if voxel_size_angstrom is None:
            raise InputError("voxel size needed for an array density", field="voxel_size_angstrom")
        vol, vs = source.astype(np.float32), float(voxel_size_angstrom)
    else:
        vol, vs = read_density_volume(source)
        if voxel_size_angstrom is not None:
            vs = float(voxel_size_angstrom)
    if centre:
        vol = centre_density(vol)
    gen = torch.Generator().manual_seed(int(seed))
    sim = simulate_particles(vol, vs, n_particles, cfg, gen)
    if out_star is not None:
        write_particle_stack(sim, out_star)
    return sim
