"""2D cryo-EM particle images: projections of rotated densities with CTF and calibrated noise.

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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt

from cryoframe._config import FrozenConfig
from cryoframe._errors import InputError
from cryoframe.data import MAPS_10A, STRUCTURES, map_path
from cryoframe.fourier.ctf import ctf_2d
from cryoframe.fourier.filters import fourier_crop
from cryoframe.geometry.rotations import random_rotations
from cryoframe.geometry.transforms import rotate_volumes, shift_images_fourier
from cryoframe.io.mrc import read_mrc, write_mrc
from cryoframe.io.star import ParticleTable, particles_with_poses, write_particles
from cryoframe.simulate.density import load_density as density_from_source
from cryoframe.simulate.noise import combine_signal_noise

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
# densities


def read_density_volume(source: str | Path) -> tuple[np.ndarray, float]:
    """Read a density: a bundled map ID (``"1BXN"``), an MRC path (``.gz`` allowed), or a bundled
    structure ID / PDB / mmCIF file (``"7P6Z"``), whose 10 Å density is computed from the atoms by
    :func:`cryoframe.simulate.density.load_density`.

    Returns
    -------
    volume : numpy.ndarray
        `(d, d, d)` float32 density, indexed (z, y, x).
    voxel_size_angstrom : float
        Voxel size in Å.
    """
    src = str(source)
    if (src.upper() in STRUCTURES and src.upper() not in MAPS_10A) or src.lower().endswith(
            (".pdb", ".cif", ".pdb.gz", ".cif.gz", ".ent", ".mmcif")):

        dm = density_from_source(src)
        return np.asarray(dm.data, dtype=np.float32), float(dm.voxel_size_angstrom)
    path = map_path(src) if src.upper() in MAPS_10A and not Path(src).exists() else Path(src)
    if not path.exists():
        raise InputError("density map not found", file=path, field="map",
                         expected=f"an MRC file or one of {sorted(MAPS_10A)}")
    vol = read_mrc(path)  # not read_volume: the bundled polnet maps carry ispg = 0
    data = np.asarray(vol.data, dtype=np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise InputError(f"map is not cubic: shape {data.shape}", file=path, field="shape",
                         expected="a cubic (d, d, d) map")
    return data, float(vol.voxel_size_angstrom)


def _support_mask(volume: np.ndarray, threshold_fraction: float) -> np.ndarray:
    vmax = float(volume.max())
    if vmax <= 0:
        raise InputError("density has no positive values", field="volume",
                         expected="a density map with positive signal")
    return volume > threshold_fraction * vmax


def longest_diameter_angstrom(volume: np.ndarray, voxel_size_angstrom: float,
                              threshold_fraction: float = 0.1) -> float:
    """Longest extent of the density: largest distance between two voxels above threshold.

    Parameters
    ----------
    volume : numpy.ndarray
        `(d, d, d)` density.
    voxel_size_angstrom : float
        Voxel size in Å.
    threshold_fraction : float
        Voxels above this fraction of the maximum count as the particle.

    Returns
    -------
    float
        Diameter in Å (voxel centres' distance plus one voxel).
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    pts = np.argwhere(_support_mask(np.asarray(volume), threshold_fraction)).astype(np.float64)
    if len(pts) < 5:
        return float(voxel_size_angstrom * max(len(pts), 1))
    try:
        hull = pts[ConvexHull(pts).vertices]
    except Exception:  # degenerate (planar) support: use all points
        hull = pts
    return float((pdist(hull).max() + 1.0) * voxel_size_angstrom)


def centre_density(volume: np.ndarray, threshold_fraction: float = 0.1) -> np.ndarray:
    """Shift the density (by whole voxels) so its centre of mass sits at the box centre ``d//2``."""
    vol = np.asarray(volume, dtype=np.float32)
    w = np.where(_support_mask(vol, threshold_fraction), vol, 0.0)
    grids = np.indices(vol.shape)
    com = [(g * w).sum() / w.sum() for g in grids]
    shift = [int(round(s // 2 - c)) for s, c in zip(vol.shape, com)]
    return np.roll(vol, shift, axis=(0, 1, 2))


# --------------------------------------------------------------------------------------------
# projection


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


# --------------------------------------------------------------------------------------------
# normalisation


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


# --------------------------------------------------------------------------------------------
# viewing directions and pose classes


def viewing_directions(rotations: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Beam direction in reference coordinates, ``Rᵀ e_z``, as `(n, 3)` zyx unit vectors."""
    r = torch.as_tensor(rotations, dtype=torch.float32)
    return r[..., 0, :]  # row 0 of R = column 0 of Rᵀ = Rᵀ e_z


def _icosahedron_vertices() -> torch.Tensor:
    phi = (1.0 + 5.0 ** 0.5) / 2.0
    v = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    t = torch.tensor(v, dtype=torch.float32)
    return t / t.norm(dim=-1, keepdim=True)


def viewing_direction_classes(rotations: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each pose to one of 12 viewing-direction classes (in-plane angle ignored).

    The classes are the Voronoi cells of the 12 vertices of a regular icosahedron on the sphere of
    viewing directions (``Rᵀ e_z``), a near-uniform partition of S².

    Returns
    -------
    labels : Tensor
        `(n,)` int64 in [0, 12).
    distance_deg : Tensor
        `(n,)` angle in degrees between each viewing direction and its class centre.
    """
    d = viewing_directions(rotations)
    c = _icosahedron_vertices()
    cos = (d @ c.T).clamp(-1.0, 1.0)
    best, labels = cos.max(dim=-1)
    return labels, torch.rad2deg(torch.arccos(best))


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


def write_particle_stack(sim: SimulatedParticles, out_star: str | Path) -> Path:
    """Write ``sim`` as ``<stem>.mrcs`` + RELION 3.1 STAR (optics + particles blocks).

    Poses and shifts go through :func:`cryoframe.io.star.particles_with_poses` (RELION Euler
    angles; ``rlnOriginX/YAngst`` = −shift), CTF parameters per particle (``rlnPhaseShift`` = 0
    always written: cryoDRGN 4.3 silently builds NaN CTFs without it), pixel size, voltage,
    Cs and amplitude contrast in the optics group.
    """
    import pandas as pd


    out_star = Path(out_star)
    stack = out_star.with_suffix(".mrcs")
    write_mrc(stack, sim.images.numpy(), sim.pixel_size_angstrom, image_stack=True)
    n = sim.images.shape[0]
    cfg = sim.config
    optics_values = {
        "rlnOpticsGroupName": "opticsGroup1", "rlnAmplitudeContrast": cfg.amplitude_contrast,
        "rlnSphericalAberration": cfg.cs_mm, "rlnVoltage": cfg.voltage_kv,
        "rlnImagePixelSize": sim.pixel_size_angstrom, "rlnImageSize": int(sim.images.shape[-1]),
        "rlnImageDimensionality": 2,
    }
    optics = pd.DataFrame({"rlnOpticsGroup": [1], **{k: [v] for k, v in optics_values.items()}})
    parts = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@{stack.name}" for i in range(n)],
        "rlnDefocusU": sim.defocus_u_angstrom.numpy().astype(np.float64),
        "rlnDefocusV": sim.defocus_v_angstrom.numpy().astype(np.float64),
        "rlnDefocusAngle": sim.defocus_angle_deg.numpy().astype(np.float64),
        "rlnCtfBfactor": np.full(n, float(cfg.b_factor_angstrom2)),
        # always written (0 without a phase plate): cryoDRGN 4.3 builds NaN CTFs without it
        "rlnPhaseShift": np.zeros(n),
        "rlnOriginXAngst": np.zeros(n), "rlnOriginYAngst": np.zeros(n),
        "rlnOpticsGroup": np.ones(n, dtype=np.int64),
    })
    for k, v in optics_values.items():
        parts[k] = v
    table = ParticleTable(particles=parts, optics=optics, optics_columns=tuple(optics_values),
                          optics_block="optics")
    shifts = torch.zeros(n, 3, dtype=torch.float64)
    shifts[:, 1:] = sim.shifts_yx_angstrom.to(torch.float64)
    table.particles = particles_with_poses(table, sim.rotations.to(torch.float64), shifts)
    write_particles(out_star, table)
    return out_star
