"""Differentiable coarse forward model: one isotropic Gaussian per residue, projection, CTF.

Supplement §1 / eq. (1) of the paper: a posed conformation ``R·x`` (C-alpha coordinates) gives

``v(q) = Σ_i a_i / (2π σ_i²) · exp(−|q − P R x_i|² / (2σ_i²))``

with ``P`` the projection along z (beam axis) onto (y, x), evaluated at pixel centres
``(j − n//2) · pixel_size``. The Gaussian image is separable, so a batch is one einsum of a
`(b, n_res, h)` and a `(b, n_res, w)` factor. The contrast image is ``2·CTF ⊛ v`` on a padded box
(:func:`cryoframe.hetero.images.apply_ctf_padded`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cryoframe.hetero.images import apply_ctf_padded

__all__ = ["gaussian_projection", "ResidueForwardModel"]


def gaussian_projection(
    coords_zyx_angstrom: Tensor,
    rotations: Tensor,
    amplitude: Tensor,
    sigma_angstrom: Tensor,
    box_px: int,
    pixel_size_angstrom: float,
    offset_angstrom: float = 0.0,
) -> Tensor:
    """Projected sum of isotropic Gaussians after an active rotation.

    Parameters
    ----------
    coords_zyx_angstrom : Tensor
        `(b, n_res, 3)` centres in Å, (z, y, x), origin at the box centre.
    rotations : Tensor
        `(b, 3, 3)` active rotations acting on zyx column vectors.
    amplitude : Tensor
        `(n_res,)` integrated amplitude of each Gaussian (e.g. rad·Å²).
    sigma_angstrom : Tensor
        `(n_res,)` standard deviations.
    box_px : int
        Image size.
    pixel_size_angstrom : float
        Pixel size.
    offset_angstrom : float
        Added to every pixel-centre coordinate (used for block-binned grids).

    Returns
    -------
    Tensor
        `(b, box_px, box_px)` image, amplitude per Å² (rad for phase amplitudes), indexed (y, x).
    """
    posed = coords_zyx_angstrom @ rotations.transpose(-1, -2)  # (b, n, 3)
    grid = ((torch.arange(box_px, dtype=posed.dtype, device=posed.device) - box_px // 2)
            * pixel_size_angstrom + offset_angstrom)  # (h,)
    inv = 1.0 / (2.0 * sigma_angstrom**2)  # (n,)
    gy = torch.exp(-(grid[None, None, :] - posed[..., 1:2]) ** 2 * inv[None, :, None])  # (b, n, h)
    gx = torch.exp(-(grid[None, None, :] - posed[..., 2:3]) ** 2 * inv[None, :, None])  # (b, n, w)
    weight = amplitude / (2.0 * math.pi * sigma_angstrom**2)  # (n,)
    return torch.einsum("bnh,bnw->bhw", gy * weight[None, :, None], gx)


class ResidueForwardModel(torch.nn.Module):
    """Residue-Gaussian forward model ``F(R, x) = 2·CTF ⊛ v_{Rx}`` (contrast units).

    Parameters
    ----------
    amplitude_rad_angstrom2 : Tensor
        `(n_res,)` integrated phase per residue (λγ·Σ f_e(0)).
    sigma_angstrom : Tensor
        `(n_res,)` Gaussian widths.
    box_px : int
        Image size.
    pixel_size_angstrom : float
        Pixel size.
    """

    def __init__(self, amplitude_rad_angstrom2, sigma_angstrom, box_px: int,
                 pixel_size_angstrom: float) -> None:
        super().__init__()
        self.register_buffer("amplitude", torch.as_tensor(amplitude_rad_angstrom2,
                                                          dtype=torch.float32))
        self.register_buffer("sigma", torch.as_tensor(sigma_angstrom, dtype=torch.float32))
        self.box_px = int(box_px)
        self.pixel_size_angstrom = float(pixel_size_angstrom)

    def phase(self, coords: Tensor, rotations: Tensor, bin_factor: int = 1) -> Tensor:
        """`(b, n, n)` phase image (rad); ``bin_factor`` gives the block-averaged grid's centres."""
        n = self.box_px // bin_factor
        px = self.pixel_size_angstrom * bin_factor
        off = 0.5 * (bin_factor - 1) * self.pixel_size_angstrom
        return gaussian_projection(coords, rotations, self.amplitude, self.sigma, n, px, off)

    def forward(self, coords: Tensor, rotations: Tensor, ctf: Tensor,
                bin_factor: int = 1) -> Tensor:
        """Contrast images.

        Parameters
        ----------
        coords : Tensor
            `(b, n_res, 3)` conformations (Å, zyx, centred).
        rotations : Tensor
            `(b, 3, 3)` poses.
        ctf : Tensor
            `(b, n_pad, n_pad // 2 + 1)` half-spectrum CTFs of the padded (binned) box.
        bin_factor : int
            Evaluate on a grid binned by this factor (``ctf`` must match that grid).

        Returns
        -------
        Tensor
            `(b, n, n)` contrast images with ``n = box_px // bin_factor``.
        """
        if coords.ndim != 3 or coords.shape[-1] != 3:
            raise ValueError(f"coords must be (b, n_res, 3), got {tuple(coords.shape)}")
        return apply_ctf_padded(self.phase(coords, rotations, bin_factor), ctf)
