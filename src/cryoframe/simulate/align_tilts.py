"""Tilt-series alignment (CryoEngine, App. C.1 "Alignment and Reconstruction").

1. Translations: images are visited from the lowest |tilt| outwards. Each is phase-correlated
   against a reference initialised with the zero-tilt view and updated as the average of the
   already-aligned images adjacent in angle (the last ``n_ref`` on the way from zero tilt: with
   sparse particles at different heights the parallax between distant tilts makes a global
   average a poor reference); the correlation peak is located to sub-pixel precision by a
   quadratic (parabola) fit per axis. Shifts are therefore cumulative in the frame of the
   zero-tilt view. Further passes re-align every image against its aligned neighbours.
   The cross-power spectrum is whitened (phase correlation) and weighted by a Gaussian
   low-pass so that the peak stays well defined in noisy images.
2. Tilt axis: an x offset of the axis shifts image ``θ`` by ``δ(1 − cos θ)`` and a z offset of
   the specimen by ``∝ sin θ``; both are removed from the estimated x shifts
   (``pin_rotation_centre``). The in-plane axis angle and a uniform x offset of the axis are
   refined afterwards by :mod:`cryoframe.simulate.tilt_axis` (``TomogramConfig.refine_tilt_axis``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryoframe._threads import one_thread
from cryoframe.geometry.transforms import shift_images_fourier

__all__ = ["phase_correlation_shift", "TiltAlignment", "align_translations"]


def _parabola(cm: float, c0: float, cp: float) -> float:
    # quadratic fit through the peak and its neighbours; on log values when all are positive
    # (exact for the Gaussian-weighted correlation peak, no sub-pixel bias)
    if min(cm, c0, cp) > 0:
        cm, c0, cp = math.log(cm), math.log(c0), math.log(cp)
    den = cm - 2 * c0 + cp
    return 0.0 if abs(den) < 1e-12 else float(np.clip(0.5 * (cm - cp) / den, -0.5, 0.5))


def phase_correlation_shift(img, ref, lowpass_sigma_cycles: float = 0.15,
                            whitening: float = 1.0) -> np.ndarray:
    """Shift ``s`` (yx, px) such that ``img(x) ≈ ref(x − s)``, by phase correlation.

    Parameters
    ----------
    img, ref : Tensor
        `(H, W)` images.
    lowpass_sigma_cycles : float
        σ (cycles/px) of the Gaussian weight of the whitened cross-power spectrum.
    whitening : float
        Exponent ``p`` of the normalisation ``cross / |cross|^p`` (1 = phase correlation,
        0 = plain cross-correlation).
    """
    a = torch.as_tensor(img, dtype=torch.float32)
    b = torch.as_tensor(ref, dtype=torch.float32)
    H, W = a.shape
    fa, fb = torch.fft.rfft2(a - a.mean()), torch.fft.rfft2(b - b.mean())
    cross = fa * fb.conj()
    if whitening:
        mag = cross.abs().clamp_min(1e-12 * float(cross.abs().max()) + 1e-30)
        cross = cross / mag**whitening
    ky = torch.fft.fftfreq(H)[:, None]
    kx = torch.fft.rfftfreq(W)[None, :]
    cross = cross * torch.exp(-(ky**2 + kx**2) / (2 * lowpass_sigma_cycles**2))
    cc = torch.fft.irfft2(cross, s=(H, W))
    iy, ix = np.unravel_index(int(torch.argmax(cc)), (H, W))
    c0 = float(cc[iy, ix])
    dy = _parabola(float(cc[(iy - 1) % H, ix]), c0, float(cc[(iy + 1) % H, ix]))
    dx = _parabola(float(cc[iy, (ix - 1) % W]), c0, float(cc[iy, (ix + 1) % W]))
    sy = iy + dy if iy <= H // 2 else iy + dy - H
    sx = ix + dx if ix <= W // 2 else ix + dx - W
    return np.array([sy, sx])


@dataclass
class TiltAlignment:
    """Result of :func:`align_translations`."""

    shifts_yx_px: np.ndarray  # (T, 2): observed(x) = aligned(x − shift)
    aligned: torch.Tensor  # (T, H, W)




def align_translations(images, tilts_deg, n_passes: int = 2, n_ref: int = 2,
                       lowpass_sigma_cycles: float = 0.1, whitening: float = 0.5,
                       pin_rotation_centre: bool = True) -> TiltAlignment:
    """Translational alignment of a tilt series (see module docstring).

    Parameters
    ----------
    images : Tensor
        `(T, H, W)` tilt images.
    tilts_deg : array-like
        `(T,)` tilt angles.
    n_passes : int
        1 = running-reference pass only; each further pass re-aligns every image against the
        average of its aligned neighbours on both sides.
    n_ref : int
        Aligned neighbours (adjacent in angle) averaged into the reference.
    lowpass_sigma_cycles, whitening : float
        Passed to :func:`phase_correlation_shift` (partial whitening 0.5 was the most robust
        for sparse particles in tests).
    pin_rotation_centre : bool
        Remove the x-shift components ``sin θ`` and ``1 − cos θ`` (a rigid displacement of the
        specimen from the tilt axis, indistinguishable from drift by correlation).

    Returns
    -------
    TiltAlignment
    """
    with one_thread():
        return _align_translations(images, tilts_deg, n_passes, n_ref, lowpass_sigma_cycles,
                                   whitening, pin_rotation_centre)


def _align_translations(images, tilts_deg, n_passes, n_ref, lowpass_sigma_cycles, whitening,
                        pin_rotation_centre) -> TiltAlignment:

    im = torch.as_tensor(images, dtype=torch.float32)
    T = im.shape[0]
    tilts = np.asarray(tilts_deg, dtype=np.float64)
    srt = np.argsort(tilts, kind="stable")  # positions along the tilt axis of angles
    pos = np.empty(T, dtype=np.int64)
    pos[srt] = np.arange(T)
    order = np.argsort(np.abs(tilts), kind="stable")
    shifts = np.zeros((T, 2))
    aligned = im.clone()
    done = np.zeros(T, dtype=bool)
    done[order[0]] = True

    def neighbours(t: int, both: bool) -> list[int]:
        # up to n_ref aligned images adjacent in angle (towards zero tilt unless both sides)
        p = pos[t]
        side = -1 if tilts[t] > tilts[order[0]] else 1
        out = [srt[p + side * k] for k in range(1, n_ref + 1) if 0 <= p + side * k < T]
        if both:
            out += [srt[p - side * k] for k in range(1, n_ref + 1) if 0 <= p - side * k < T]
        return [int(i) for i in out if done[i]]

    for t in order[1:]:
        ref = aligned[neighbours(int(t), both=False)].mean(0)
        shifts[t] = phase_correlation_shift(im[t], ref, lowpass_sigma_cycles, whitening)
        aligned[t] = shift_images_fourier(im[t], torch.as_tensor(-shifts[t], dtype=torch.float32))
        done[t] = True
    for _ in range(max(0, n_passes - 1)):
        new = shifts.copy()
        for t in order[1:]:
            ref = aligned[neighbours(int(t), both=True)].mean(0)
            new[t] = shifts[t] + phase_correlation_shift(aligned[t], ref, lowpass_sigma_cycles,
                                                         whitening)
        shifts = new - new[order[0]]
    if pin_rotation_centre and T > 2:
        # x-shifts of the form a·sin θ + b·(1 − cos θ) are a rigid z/x displacement of the
        # specimen relative to the tilt axis, which image correlation cannot tell from drift;
        # remove them so the rotation centre stays at the tomogram centre (the simulation frame)
        th = np.deg2rad(tilts)
        basis = np.stack([np.sin(th), 1 - np.cos(th)], 1)
        coef = np.linalg.lstsq(basis, shifts[:, 1], rcond=None)[0]
        shifts[:, 1] -= basis @ coef
    aligned = shift_images_fourier(im, torch.as_tensor(-shifts, dtype=torch.float32))
    return TiltAlignment(shifts, aligned)
