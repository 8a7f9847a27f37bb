"""Global refinement of the tilt-axis angle and x offset by a reprojection-consistency error.

Geometry (the frame of :mod:`cryoframe.simulate.tiltseries` and
:func:`cryoframe.simulate.reconstruct.backproject`): after correction the tilt axis is the
detector ``y`` axis through the detector centre ``(H // 2, W // 2)``. A translationally aligned
but uncorrected image is the corrected one rotated in-plane by ``axis_angle_deg``
(:func:`cryoframe.geometry.transforms.rotate_images` convention: positive turns ``x`` towards
``y``) and then shifted by ``axis_offset_px`` along ``x`` at every tilt (the axis lies at
detector column ``W // 2 + offset``, the ``x_offset_px`` of ``backproject``).
:func:`correct_tilt_axis` undoes both (Fourier shift, then cubic B-spline rotation).

Objective (:func:`axis_reprojection_error`): since the axis is ``y``, every detector row is an
independent parallel-beam sinogram of one slice of the specimen. For each corrected image and
(binned) row the moments along x, ``m0_t(y) = Σ_x I_t`` and ``m1_t(y) = Σ_x x I_t``, must obey
the order-0/1 Helgason–Ludwig consistency conditions: ``m0_t(y)`` is the same at every tilt
(the common line along the axis), and ``m1_t(y) = M(y) (x̄(y) cos θ_t + z̄(y) sin θ_t)``, the
projection of the slice's centre of mass. The error is a reprojection error of this low-order
reconstruction: per row, the mass ``M`` is estimated as the tilt average and the centroid
``(x̄ M, z̄ M)`` by least squares over all tilts, both are reprojected at every tilt, and the
squared residuals are summed (each order normalised by its total power). The moments are
taken over bands of ``bin_factor`` corrected rows from each pixel's exact corrected
coordinates (Gaussian partition-of-unity weights between bands, the two outermost bands
dropped); images are not resampled during the search. A reconstruction
with 1 + 2 unknowns per row cannot reproduce an inconsistent stack from ``T ≫ 3`` views, so,
unlike comparing images with a WBP volume made from the same images, no trivial fit pulls the
optimum towards the starting geometry. A residual angle ``δα`` mixes rows (``m0`` changes by
``δα · x'_t`` with the tilt-dependent projected position ``x'_t``); a residual offset ``δ``
adds ``M δ`` to ``m1`` at every tilt, which ``cos θ`` and ``sin θ`` cannot represent.

Why not a WBP-volume reprojection error: a leave-one-out WBP slab, re-projected at the held-out
tilt, is predicted mostly by its neighbours 1–2 steps away, which share nearly the same
(smoothly varying) geometric error; on a noise-free 80-px blob stack with a 1.5°/2 px error its
error changed by < 1 % between truth and no correction (baseline ``1 − ρ² ≈ 0.05–0.13`` from
slab truncation and the missing wedge), and the grid minimum was at the wrong sign.

Search (:func:`refine_tilt_axis`): a coarse grid in the angle (offset 0), one in the offset
(best angle), the angle grid again (best offset), then rounds of bounded Brent minimisation
(golden section with parabolic steps, ``scipy.optimize.minimize_scalar``) of each parameter
within ±1 grid step.

Known limits
    * The moments require every slice of the specimen to stay inside the detector at all
      tilts (isolated particles, or a masked region of interest) and a background of 0:
      subtract the solvent/vacuum level first. For a slab wider than the field of view,
      material entering and leaving at high tilt breaks both conditions (as it breaks
      fiducial-free alignment in general); restrict the stack to a cropped, tapered region.
    * The offset is only seen through the tilt-independent part of ``m1``: it needs a tilt
      range where ``1``, ``cos θ``, ``sin θ`` are well separated (≥ ±40°), and mass away
      from the axis does not help it.
    * Only the in-plane angle and x offset are fitted (one axis for the whole series; no
      per-tilt rotation, magnification or beam tilt).
    * Noise: the angle is carried by small tilt-to-tilt differences of whole-row sums, so the
      estimate is noise-limited well before cryo-ET dose levels. On the 80-px blob stack of the
      tests (true +1.5°, +2 px; white noise, 3 seeds) per-pixel noise sd 0.3× the image sd
      gave 1.17–1.25° / 1.94–2.24 px (``bin_factor=4``); noise sd 1.0× failed (−0.46…−0.2°,
      3–6 px). Use it on noise-free simulations, high-dose or denoised stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.geometry.transforms import rotate_images, shift_images_fourier

__all__ = ["TiltAxisFit", "correct_tilt_axis", "axis_reprojection_error", "refine_tilt_axis"]


@dataclass
class TiltAxisFit:
    """Result of :func:`refine_tilt_axis`.

    Attributes
    ----------
    axis_angle_deg : float
        In-plane angle of the tilt axis from the detector y axis (degrees).
    axis_offset_px : float
        x position of the tilt axis relative to the detector centre (unbinned px).
    error : float
        Objective at the optimum (normalised squared residual, dimensionless; 0 = consistent).
    error_uncorrected : float
        Objective at angle 0, offset 0.
    n_evaluations : int
        Objective evaluations used.
    grid : dict
        ``{"angle_deg": (n,), "angle_error": (n,), "offset_px": (m,), "offset_error": (m,)}``
        coarse-grid profiles.
    """

    axis_angle_deg: float
    axis_offset_px: float
    error: float
    error_uncorrected: float
    n_evaluations: int
    grid: dict = field(default_factory=dict)


def _check_stack(images, tilts_deg) -> tuple[torch.Tensor, np.ndarray]:
    im = torch.as_tensor(images, dtype=torch.float32)
    if im.dim() != 3:
        raise InputError(f"expected a (T, H, W) tilt stack, got shape {tuple(im.shape)}",
                         field="images", expected="(T, H, W)")
    tilts = np.asarray(tilts_deg, dtype=np.float64).reshape(-1)
    if tilts.shape[0] != im.shape[0] or im.shape[0] < 3:
        raise InputError(f"{im.shape[0]} images but {tilts.shape[0]} tilt angles",
                         field="tilts_deg", expected="one angle per image, at least 3")
    return im, tilts


def correct_tilt_axis(images, axis_angle_deg: float, axis_offset_px: float) -> torch.Tensor:
    """Undo an axis offset (periodic Fourier shift by ``−offset`` in x) then rotate by ``−angle``.

    Parameters
    ----------
    images : Tensor
        `(T, H, W)` translationally aligned tilt images.
    axis_angle_deg : float
        In-plane angle of the tilt axis from the detector y axis (degrees).
    axis_offset_px : float
        x position of the tilt axis relative to the detector centre (px).

    Returns
    -------
    Tensor
        `(T, H, W)` images whose tilt axis is the y axis through ``(H // 2, W // 2)``.
    """
    im = torch.as_tensor(images, dtype=torch.float32)
    if axis_offset_px != 0.0:
        im = shift_images_fourier(im, torch.tensor([0.0, -float(axis_offset_px)]))
    if axis_angle_deg != 0.0:
        im = rotate_images(im, -math.radians(float(axis_angle_deg)), order="cubic")
    return im


def _row_moments(images: torch.Tensor, bin_factor: int, angle_deg: float,
                 offset_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Order-0 and order-1 moments along the corrected x of each corrected row band: `(T, B)`.

    Each pixel's corrected coordinates ``(y', x')`` are computed exactly (offset removed, then
    rotated by ``−angle``); its value is shared between bands of ``bin_factor`` rows with
    normalised Gaussian weights (σ = 0.6 band). No image is resampled, so the noise in the
    moments does not depend on the candidate geometry through interpolation.
    """
    T, H, W = images.shape
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    qy = (torch.arange(H, dtype=torch.float64) - H // 2)[:, None].expand(H, W)
    qx = (torch.arange(W, dtype=torch.float64) - W // 2)[None, :].expand(H, W) - offset_px
    py, px = c * qy - s * qx, s * qy + c * qx
    n_band = H // bin_factor
    centres = (torch.arange(n_band, dtype=torch.float64) - (n_band - 1) / 2) * bin_factor
    w = torch.exp(-(py.reshape(1, -1) - centres[:, None])**2 / (2 * (0.6 * bin_factor)**2))
    w = w / w.sum(0, keepdim=True).clamp_min(1e-30)  # (B, H·W), partition of unity
    flat = images.reshape(T, -1).double()
    return flat @ w.T, (flat * px.reshape(1, -1)) @ w.T


def _objective(images: torch.Tensor, tilts: np.ndarray, bin_factor: int, angle_deg: float,
               offset_px: float) -> float:
    m0, m1 = _row_moments(images, bin_factor, angle_deg, offset_px)
    keep = slice(1, -1)  # outer bands collect pixels beyond the rotated field of view
    m0, m1 = m0[:, keep], m1[:, keep]
    # order 0: the row profile is the same at every tilt (common line along the axis)
    r0 = m0 - m0.mean(0, keepdim=True)
    # order 1: reconstruct each row's centroid (x m, z m) by least squares, reproject it
    th = np.deg2rad(tilts)
    basis = torch.as_tensor(np.stack([np.cos(th), np.sin(th)], 1))  # (T, 2)
    coef = torch.linalg.lstsq(basis, m1).solution  # (2, H')
    r1 = m1 - basis @ coef
    e0 = float((r0**2).sum() / (m0**2).sum().clamp_min(1e-30))
    e1 = float((r1**2).sum() / (m1**2).sum().clamp_min(1e-30))
    return e0 + e1


def _setup(images, tilts_deg, bin_factor: int):
    im, tilts = _check_stack(images, tilts_deg)
    if bin_factor < 1 or im.shape[1] // bin_factor < 4:
        raise InputError(f"bin_factor {bin_factor} for {im.shape[1]} rows", field="bin_factor",
                         expected="bin_factor ≥ 1 leaving at least 4 binned rows")
    th = np.deg2rad(tilts)
    if np.linalg.matrix_rank(np.stack([np.cos(th), np.sin(th), np.ones_like(th)], 1)) < 3:
        raise InputError("the tilt angles do not separate the axis offset from the specimen "
                         "position", field="tilts_deg", expected="at least 3 distinct angles")
    return im, tilts


def axis_reprojection_error(images, tilts_deg, axis_angle_deg: float = 0.0,
                            axis_offset_px: float = 0.0, *, bin_factor: int = 2) -> float:
    """Moment-reprojection error of a tilt stack under a tilt-axis geometry (module docstring).

    Parameters
    ----------
    images : Tensor
        `(T, H, W)` translationally aligned tilt images.
    tilts_deg : array-like
        `(T,)` tilt angles.
    axis_angle_deg, axis_offset_px : float
        Candidate axis angle (degrees) and x offset (unbinned px), see module docstring.
    bin_factor : int
        Rows summed together (along the axis) before the moments are taken.

    Returns
    -------
    float
        Sum of the order-0 and order-1 normalised squared residuals (dimensionless; 0 for a
        consistent stack).
    """
    im, tilts = _setup(images, tilts_deg, bin_factor)
    return _objective(im, tilts, bin_factor, axis_angle_deg, axis_offset_px)


def refine_tilt_axis(images, tilts_deg, *, bin_factor: int = 2,
                     angle_range_deg: float = 3.0, angle_step_deg: float = 0.5,
                     offset_range_px: float = 4.0, offset_step_px: float = 1.0,
                     n_rounds: int = 2) -> TiltAxisFit:
    """Estimate the tilt-axis angle and x offset minimising :func:`axis_reprojection_error`.

    Parameters
    ----------
    images : Tensor
        `(T, H, W)` translationally aligned tilt images.
    tilts_deg : array-like
        `(T,)` tilt angles.
    bin_factor : int
        Rows summed together before the moments are taken.
    angle_range_deg, angle_step_deg : float
        Coarse grid ``−range … +range`` of the axis angle.
    offset_range_px, offset_step_px : float
        Coarse grid of the axis x offset (unbinned px).
    n_rounds : int
        Rounds of per-parameter bounded Brent refinement after the grids.

    Returns
    -------
    TiltAxisFit
        Apply with :func:`correct_tilt_axis`; back-project the corrected stack with its axis at
        the detector centre.
    """
    from scipy.optimize import minimize_scalar

    if angle_step_deg <= 0 or offset_step_px <= 0 or angle_range_deg < 0 or offset_range_px < 0:
        raise InputError("grid ranges must be ≥ 0 and steps > 0", field="angle_step_deg",
                         expected="positive steps")
    im, tilts = _setup(images, tilts_deg, bin_factor)
    n_eval = 0

    def f(angle: float, offset: float) -> float:
        nonlocal n_eval
        n_eval += 1
        return _objective(im, tilts, bin_factor, angle, offset)

    angles = np.arange(-angle_range_deg, angle_range_deg + 1e-9, angle_step_deg)
    angles = np.unique(np.round(np.append(angles, 0.0), 9))
    a_err = np.array([f(a, 0.0) for a in angles])
    e0 = float(a_err[np.argmin(np.abs(angles))])
    angle = float(angles[np.argmin(a_err)])
    offsets = np.arange(-offset_range_px, offset_range_px + 1e-9, offset_step_px)
    offsets = np.unique(np.round(np.append(offsets, 0.0), 9))
    o_err = np.array([f(angle, o) for o in offsets])
    offset = float(offsets[np.argmin(o_err)])
    a_err2 = np.array([f(a, offset) for a in angles])  # angle and offset are coupled
    angle = float(angles[np.argmin(a_err2)])
    best = float(a_err2.min())
    for _ in range(n_rounds):
        r = minimize_scalar(lambda a: f(a, offset), bounds=(angle - angle_step_deg,
                            angle + angle_step_deg), method="bounded",
                            options={"xatol": 0.02 * angle_step_deg})
        if r.fun < best:
            angle, best = float(r.x), float(r.fun)
        r = minimize_scalar(lambda o: f(angle, o), bounds=(offset - offset_step_px,
                            offset + offset_step_px), method="bounded",
                            options={"xatol": 0.02 * offset_step_px})
        if r.fun < best:
            offset, best = float(r.x), float(r.fun)
    return TiltAxisFit(angle, offset, best, e0, n_eval,
                       {"angle_deg": angles, "angle_error": a_err,
                        "offset_px": offsets, "offset_error": o_err})
