"""Calibrated Gaussian noise at an exact voxel-wise SNR (CryoEngine, App. C.1 "Noise Augmentation").

``SNR = Var(S) / Var(N)`` per volume. The noise of volume ``index`` at ``snr`` is a pure function
of ``(seed, index, snr)``, so a store keeps one clean copy and every noisy copy is regenerated on
the fly, identically, in any order and on any worker. With ``exact=True`` (default) the drawn
noise is centred and rescaled to the exact empirical variance ``Var(S)/SNR``, so the measured SNR
equals the target to float precision; ``exact=False`` keeps the raw draw (SNR within sampling
error, ~1 % for 32³ voxels).

With noise injected in the tilt images instead (the full path, ``noise_stage="tilt"``), the store
holds the reconstructed signal ``S`` and a reconstructed unit-noise volume ``N`` (WBP is linear);
:func:`combine_signal_noise` scales ``N`` so that ``Var(S)/Var(αN)`` is the target.
"""

from __future__ import annotations

import numpy as np
import torch

from cryoframe._errors import InputError

__all__ = ["noise_generator", "calibrated_noise", "add_noise", "combine_signal_noise", "measured_snr"]


def _snr_key(snr: float) -> int:
    # SNR enters the seed as an integer in units of 1e-9 (0.05 and 0.0500000001 are the same key).
    return int(round(float(snr) * 1e9))


def noise_generator(seed: int, index: int, snr: float) -> torch.Generator:
    """Torch generator keyed by ``(seed, index, snr)``."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), _snr_key(snr), 7])
    return torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] >> 1))


def _check_snr(snr: float) -> None:
    if not np.isfinite(snr) or snr <= 0:
        raise InputError(f"SNR must be positive and finite, got {snr}", field="snr")


def calibrated_noise(
    clean: torch.Tensor, snr: float, seed: int, indices, exact: bool = True
) -> torch.Tensor:
    """Noise volumes with ``Var(S)/Var(N) = snr`` for each volume of a batch.

    Parameters
    ----------
    clean : Tensor
        `(B, ...)` clean volumes (the signal ``S``).
    snr : float
        Target SNR.
    seed : int
        Dataset seed.
    indices : sequence of int
        `(B,)` global index of each volume (the store row).
    exact : bool
        Rescale each draw to the exact target variance.

    Returns
    -------
    Tensor
        `(B, ...)` float32 noise, same shape as ``clean``.
    """
    _check_snr(snr)
    clean = torch.as_tensor(clean, dtype=torch.float32)
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    if len(idx) != clean.shape[0]:
        raise InputError("one index per volume", field="indices", expected=f"{clean.shape[0]}")
    var_s = clean.reshape(clean.shape[0], -1).var(dim=1, unbiased=False).double()
    out = torch.empty_like(clean)
    for b, i in enumerate(idx):
        out[b] = torch.randn(clean.shape[1:], generator=noise_generator(seed, i, snr))
    flat = out.reshape(out.shape[0], -1)
    sigma = torch.sqrt(var_s / snr)
    if exact:
        flat = flat - flat.mean(dim=1, keepdim=True)
        flat = flat / flat.double().std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-30).float()
    flat = flat * sigma.float()[:, None]
    return flat.reshape(clean.shape)


def add_noise(clean, snr: float, seed: int, indices, exact: bool = True) -> torch.Tensor:
    """``S + N`` with :func:`calibrated_noise`; `(B, ...)` in, `(B, ...)` float32 out."""
    clean = torch.as_tensor(clean, dtype=torch.float32)
    return clean + calibrated_noise(clean, snr, seed, indices, exact=exact)


def combine_signal_noise(signal, unit_noise, snr, *, signal_var=None, noise_var=None,
                         correction: int = 0) -> torch.Tensor:
    """``S + αN`` with ``α² = Var(S) / (snr · Var(N))`` per item: the one way to put noise at a
    given SNR (3D tilt-level noise, 2D particles, junk, particle pretraining, hetero images).

    Parameters
    ----------
    signal, unit_noise : Tensor
        `(B, ...)` signal (volumes or images) and noise of any scale, same shapes.
    snr : float or Tensor
        Target SNR, one value or `(B,)` per item.
    signal_var : float or Tensor, optional
        ``Var(S)`` to use instead of each item's own variance (a scalar or `(B,)`): a reference
        signal level, e.g. the mean over good particles for junk images.
    noise_var : float or Tensor, optional
        ``Var(N)`` to use instead of each draw's measured variance (e.g. 1 for unit normal noise).
    correction : int
        Bessel correction of the measured variances (0: population, 1: sample variance).

    Returns
    -------
    Tensor
        `(B, ...)` float32 ``S + αN``.
    """
    snr_t = torch.as_tensor(snr, dtype=torch.float32)
    if not bool(torch.isfinite(snr_t).all()) or bool((snr_t <= 0).any()):
        raise InputError(f"SNR must be positive and finite, got {snr}", field="snr")
    s = torch.as_tensor(signal, dtype=torch.float32)
    n = torch.as_tensor(unit_noise, dtype=torch.float32)
    b = s.shape[0]
    vs = (s.reshape(b, -1).var(dim=1, correction=correction) if signal_var is None
          else torch.as_tensor(signal_var, dtype=torch.float32).reshape(-1))
    vn = (n.reshape(b, -1).var(dim=1, correction=correction).clamp_min(1e-30)
          if noise_var is None else torch.as_tensor(noise_var, dtype=torch.float32).reshape(-1))
    snr_b = snr if isinstance(snr, (int, float)) else snr_t.reshape(-1)
    alpha = torch.sqrt(vs / (snr_b * vn))
    return s + alpha.reshape(-1, *([1] * (s.ndim - 1))) * n


def measured_snr(clean, noisy) -> torch.Tensor:
    """`(B,)` ``Var(S) / Var(noisy − S)`` per volume."""
    s = torch.as_tensor(clean, dtype=torch.float64)
    n = torch.as_tensor(noisy, dtype=torch.float64) - s
    return s.reshape(s.shape[0], -1).var(1, unbiased=False) / n.reshape(n.shape[0], -1).var(
        1, unbiased=False
    )
