"""Fourier-space sampling grids in cycles/pixel.

Frequencies follow ``torch.fft.fftfreq`` (DC at index 0, **not** shifted) unless
``fftshift=True``, in which case DC sits at index ``n // 2`` along each full axis. With
``rfft=True`` the last axis is the non-negative half ``rfftfreq(n)`` of length ``n // 2 + 1``
(never shifted).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cryoframe._errors import InputError

__all__ = ["fftfreq_grid", "radial_frequency", "rfft_shape"]


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise InputError(f"invalid grid shape {shape}", field="shape", expected="positive sizes")
    return shape


def rfft_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of the rfft half spectrum of a real array of ``shape`` (last axis ``n // 2 + 1``)."""
    shape = _check_shape(shape)
    return (*shape[:-1], shape[-1] // 2 + 1)


def fftfreq_grid(
    shape: Sequence[int],
    rfft: bool = False,
    fftshift: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Grid of spatial frequencies in cycles/pixel.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape, e.g. ``(d, h, w)`` (zyx) or ``(h, w)`` (yx).
    rfft : bool
        Half spectrum along the last axis, matching ``torch.fft.rfftn``.
    fftshift : bool
        DC at ``n // 2`` on the full axes (as after ``torch.fft.fftshift``); ignored for the
        rfft axis.
    dtype, device
        Output dtype and device.

    Returns
    -------
    Tensor
        `(*grid_shape, ndim)` frequencies in zyx (or yx) order, cycles/pixel in ``[-0.5, 0.5)``.
    """
    shape = _check_shape(shape)
    axes = []
    for i, n in enumerate(shape):
        if rfft and i == len(shape) - 1:
            f = torch.fft.rfftfreq(n, dtype=dtype, device=device)
        else:
            f = torch.fft.fftfreq(n, dtype=dtype, device=device)
            if fftshift:
                f = torch.fft.fftshift(f)
        axes.append(f)
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def radial_frequency(
    shape: Sequence[int],
    rfft: bool = False,
    fftshift: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Magnitude of the frequency vector, cycles/pixel.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape.
    rfft, fftshift, dtype, device
        As in :func:`fftfreq_grid`.

    Returns
    -------
    Tensor
        `grid_shape` radial frequency ``|k|`` (0 at DC, 0.5 at Nyquist along an axis).
    """
    return torch.linalg.norm(fftfreq_grid(shape, rfft, fftshift, dtype, device), dim=-1)
