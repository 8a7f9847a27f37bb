"""Fourier-space rotation and projection of one density (gridding with 2× padding).

The density is zero-padded 2× and pre-divided by the gridding kernel ``Π sinc²(r_i / P)``
(``P`` = padded edge), then Fourier transformed once. Afterwards

* a projection of the density rotated by ``R`` along the beam (z) is the central slice
  ``F(Rᵀ (0, k_y, k_x))`` (projection-slice theorem), sampled by trilinear interpolation of the
  padded spectrum — this is the exact line integral of the band-limited map, without the
  aliasing of real-space ray sums (the role of the 2× oversampling in App. C);
* a rotated (and sub-voxel shifted) copy of the volume is ``F(Rᵀ k)`` sampled on a 3D half
  spectrum, in which a missing wedge or a CTF-like envelope is applied for free.

Trilinear interpolation in the padded spectrum multiplies real space by ``Π sinc²(r_i / P)``,
which the pre-division cancels (RELION's gridding correction). Cost per output is ``O(n²)`` for
a projection and ``O(n³)`` gather-only for a volume, with one FFT of the padded map per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cryoframe._errors import InputError

__all__ = ["FourierProjector"]


class FourierProjector:
    """Rotations and projections of one density by interpolation in its padded spectrum.

    Parameters
    ----------
    density : array-like
        `(L, L, L)` real density, zyx, rotation centre at index ``L // 2``.
    pad : int
        Padding factor (2 is RELION's default and accurate for smooth maps).
    """

    def __init__(self, density, pad: int = 2) -> None:
        vol = torch.as_tensor(density, dtype=torch.float64)
        if vol.dim() != 3 or len(set(vol.shape)) != 1:

            raise InputError(f"density must be a cube, got {tuple(vol.shape)}", field="density",
                             expected="(L, L, L)")
        L = vol.shape[0]
        P = pad * L
        r = torch.arange(L, dtype=torch.float64) - L // 2
        corr = torch.sinc(r / P) ** 2
        vol = vol / (corr[:, None, None] * corr[None, :, None] * corr[None, None, :])
        padded = torch.zeros((P, P, P), dtype=torch.float64)
        s = P // 2 - L // 2
        padded[s:s + L, s:s + L, s:s + L] = vol
        ft = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(padded)))  # DC at P // 2
        self.size = L
        self.padded_size = P
        self._ft = torch.stack([ft.real, ft.imag]).float()[None].contiguous()  # (1, 2, P, P, P)

    def _sample(self, q: torch.Tensor) -> torch.Tensor:
        """Complex spectrum at `(..., 3)` frequencies (cycles/px, zyx); zero outside."""
        return self._sample_grid(self._to_grid(q))

    def _to_grid(self, q: torch.Tensor) -> torch.Tensor:
        P = self.padded_size
        idx = q * P + P // 2  # padded-grid index, zyx
        return (idx / (P - 1) * 2 - 1).flip(-1)  # grid_sample wants (x, y, z) in [-1, 1]

    def _grid_rotation(self, R: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``(A, b)`` with ``grid = A k + b`` = normalised (x, y, z) position of ``Rᵀ k``."""
        P = self.padded_size
        scale = 2.0 * P / (P - 1)
        A = R.transpose(-1, -2).flip(-2) * scale  # rows (x, y, z) of Rᵀ
        return A, 2.0 * (P // 2) / (P - 1) - 1.0

    def _sample_grid(self, g: torch.Tensor) -> torch.Tensor:
        shp = g.shape[:-1]
        out = F.grid_sample(self._ft, g.reshape(1, -1, 1, 1, 3).float(), mode="bilinear",
                            padding_mode="zeros", align_corners=True)  # (1, 2, M, 1, 1)
        out = out.reshape(2, *shp)
        return torch.complex(out[0], out[1])

    def project(self, rotations, shifts_yx_px=None, out_size: int | None = None) -> torch.Tensor:
        """Projections along z of the density rotated by ``rotations``.

        Parameters
        ----------
        rotations : Tensor
            `(B, 3, 3)` active zyx rotations.
        shifts_yx_px : Tensor, optional
            `(B, 2)` sub-pixel shifts applied to each image (``out(x) = img(x − s)``).
        out_size : int, optional
            Image edge (default ``L``); the density centre lands on pixel ``out_size // 2``.

        Returns
        -------
        Tensor
            `(B, n, n)` float32 line integrals (voxel length units).
        """
        R = torch.as_tensor(rotations, dtype=torch.float32).reshape(-1, 3, 3)
        n = self.size if out_size is None else int(out_size)
        f = torch.fft.fftfreq(n, dtype=torch.float32)
        ky, kx = torch.meshgrid(f, f, indexing="ij")
        k = torch.stack([torch.zeros_like(ky), ky, kx], -1)  # (n, n, 3)
        q = torch.einsum("bji,hwj->bhwi", R, k)  # Rᵀ k
        spec = self._sample(q)  # (B, n, n), unshifted frequency layout
        # the spectrum is of a volume centred at the origin: move the centre to n // 2
        shift = torch.full((R.shape[0], 2), float(n // 2))
        if shifts_yx_px is not None:
            shift = shift + torch.as_tensor(shifts_yx_px, dtype=torch.float32).reshape(-1, 2)
        phase = ky[None] * shift[:, 0, None, None] + kx[None] * shift[:, 1, None, None]
        spec = spec * torch.polar(torch.ones_like(phase), -2 * torch.pi * phase)
        return torch.fft.ifft2(spec).real

    def volumes_rfft(self, rotations, shifts_zyx_px=None, out_size: int | None = None,
                     support=None, weights=None):
        """Half spectra of the rotated, shifted density on an ``n³`` grid.

        Parameters
        ----------
        rotations : Tensor
            `(B, 3, 3)` active zyx rotations.
        shifts_zyx_px : Tensor, optional
            `(B, 3)` shifts of the density centre from the box centre (voxels).
        out_size : int, optional
            Box edge ``n`` (default ``L``).
        support : Tensor, optional
            `(n, n, n//2+1)` bool: only these frequencies are sampled (others are 0), e.g. the
            measured wedge inside the Nyquist sphere — the cost scales with its size.
        weights : Tensor, optional
            `(n, n, n//2+1)` real filter multiplied into the spectrum.

        Returns
        -------
        Tensor
            `(B, n, n, n // 2 + 1)` complex64 ``rfftn`` of volumes centred at ``n // 2``.
        """
        R = torch.as_tensor(rotations, dtype=torch.float32).reshape(-1, 3, 3)
        B = R.shape[0]
        n = self.size if out_size is None else int(out_size)
        f = torch.fft.fftfreq(n, dtype=torch.float32)
        fr = torch.fft.rfftfreq(n, dtype=torch.float32)
        kz, ky, kx = torch.meshgrid(f, f, fr, indexing="ij")
        k = torch.stack([kz, ky, kx], -1).reshape(-1, 3)  # (n·n·h, 3)
        sel = None
        if support is not None:
            sel = torch.as_tensor(support, dtype=torch.bool).reshape(-1).nonzero().squeeze(1)
            k = k[sel]
        A, b0 = self._grid_rotation(R)
        g = torch.baddbmm(torch.full((1, 1, 1), b0), k.expand(B, -1, -1), A.transpose(1, 2))
        spec = self._sample_grid(g)  # (B, M) = F(Rᵀ k)
        shift = torch.full((B, 3), float(n // 2))
        if shifts_zyx_px is not None:
            shift = shift + torch.as_tensor(shifts_zyx_px, dtype=torch.float32).reshape(-1, 3)
        phase = (-2 * torch.pi) * (shift @ k.T)  # (B, M)
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
            mag = (w if sel is None else w[sel]).expand_as(phase)
        else:
            mag = torch.ones_like(phase)
        spec = spec * torch.polar(mag, phase)
        h = n // 2 + 1
        if sel is None:
            return spec.reshape(B, n, n, h)
        out = torch.zeros((B, n * n * h), dtype=spec.dtype)
        out[:, sel] = spec
        return out.reshape(B, n, n, h)

    def volumes(self, rotations, shifts_zyx_px=None, out_size: int | None = None) -> torch.Tensor:
        """`(B, n, n, n)` float32 rotated (and shifted) copies of the density."""
        n = self.size if out_size is None else int(out_size)
        spec = self.volumes_rfft(rotations, shifts_zyx_px, n)
        return torch.fft.irfftn(spec, s=(n, n, n), dim=(-3, -2, -1))
