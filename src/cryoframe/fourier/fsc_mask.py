"""Masked FSC corrected for the mask by phase randomisation (Chen et al. 2013, Ultramicroscopy
135:24-35; the correction RELION's post-processing applies).

A real-space mask convolves both half maps' spectra with the mask's spectrum: the strong,
shared low-frequency signal leaks into higher shells identically in both halves, and a tight or
sharp mask then reads a correlation that no data measured. The correction measures that
leakage directly. Beyond the shell ``s_r`` where the unmasked FSC first falls below
``randomise_below`` (0.8 by default), both half maps get independent random phases (amplitudes
kept), which removes every true correlation there; the masked FSC of those maps, ``FSC_n``, is
then the mask's contribution alone, and for ``s > s_r``::

    FSC_true(s) = (FSC_t(s) − FSC_n(s)) / (1 − FSC_n(s))

with ``FSC_t`` the masked FSC of the original maps (``FSC_true = FSC_t`` below ``s_r``, where the
phases were kept). The random phases are drawn from a seeded generator, so the result is
reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.fsc import fsc
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.grids import fftfreq_grid

__all__ = ["MaskedFSC", "masked_fsc_corrected", "randomise_phases_beyond"]


@dataclass
class MaskedFSC:
    """Curves on shells ``s / n`` (cycles/px), all `(n // 2 + 1,)` float64."""

    freq_cycles_per_px: Tensor
    corrected: Tensor        #: FSC_true, the figure to quote
    masked: Tensor           #: FSC_t, masked original maps (inflated by the mask)
    unmasked: Tensor         #: FSC of the maps without the mask
    random_masked: Tensor    #: FSC_n, masked phase-randomised maps (the mask's contribution)
    randomised_from_shell: int  #: s_r: phases randomised at shells > s_r


def randomise_phases_beyond(volume: Tensor, shell: int, generator: torch.Generator) -> Tensor:
    """``volume`` with uniformly random Fourier phases at shells ``> shell`` (amplitudes kept)."""
    n = volume.shape[-1]
    spec = torch.fft.rfftn(volume.to(torch.float64))
    k = fftfreq_grid(tuple(volume.shape), rfft=True, dtype=torch.float64)
    s = torch.round(torch.linalg.norm(k, dim=-1) * n)
    # the phases of white noise's spectrum: uniform, and Hermitian-consistent where the rfft
    # half stores a coefficient and its mate (the kx = 0 and Nyquist planes)
    noise = torch.fft.rfftn(torch.randn(volume.shape, generator=generator, dtype=torch.float64))
    rand = spec.abs() * torch.sgn(noise)
    spec = torch.where(s > shell, rand, spec)
    return torch.fft.irfftn(spec, s=tuple(volume.shape))


def masked_fsc_corrected(half1: object, half2: object, mask: object,
                         randomise_below: float = 0.8, seed: int = 0) -> MaskedFSC:
    """Masked half-map FSC with the mask's contribution removed (module docstring).

    Parameters
    ----------
    half1, half2 : array-like
        `(n, n, n)` independent half maps.
    mask : array-like
        `(n, n, n)` real-space mask (soft edges recommended), values in [0, 1].
    randomise_below : float
        Phases are randomised beyond the first shell (≥ 1) where the unmasked FSC falls below
        this value.
    seed : int
        Seed of the random phases.

    Returns
    -------
    MaskedFSC
    """
    a, b, m = (as_float_tensor(v).to(torch.float64) for v in (half1, half2, mask))
    if a.dim() != 3 or a.shape != b.shape or m.shape != a.shape:
        raise InputError(f"maps {tuple(a.shape)}, {tuple(b.shape)} and mask {tuple(m.shape)}",
                         field="mask", expected="three (n, n, n) volumes of one shape")
    if not 0.0 < randomise_below < 1.0:
        raise InputError(f"randomise_below {randomise_below}", field="randomise_below",
                         expected="a value in (0, 1)")
    freq, unmasked = fsc(a, b)
    # first shell s0 ≥ 1 below the threshold: phases are randomised at s ≥ s0, i.e. s > s0 − 1
    below = torch.nonzero(unmasked[1:] < randomise_below).flatten()
    s_r = int(below[0]) if len(below) else len(unmasked) - 1
    _, masked = fsc(a, b, mask=m)
    gen = torch.Generator().manual_seed(seed)
    ra, rb = (randomise_phases_beyond(v, s_r, gen) for v in (a, b))
    _, random_masked = fsc(ra, rb, mask=m)
    shells = torch.arange(len(freq))
    corr = (masked - random_masked) / (1.0 - random_masked).clamp_min(1e-6)
    corrected = torch.where(shells > s_r, corr, masked)
    return MaskedFSC(freq, corrected, masked, unmasked, random_masked, s_r)
