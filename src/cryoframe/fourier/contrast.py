"""Contrast relation between data and a reference map (protein dark vs protein bright).

Subtomograms and particle images carry the physical contrast: protein is *dark* at low
frequency (cryoframe's simulator, real tomograms). Maps from EMDB, ``simulate structures`` or
gemmi are positive densities (protein *bright*). Comparing the two without noticing the sign
makes an aligner chase anti-correlation and an FSC against truth collapse, silently.

:func:`contrast_relation` measures the sign without knowing the poses: subtomograms are centred
on their particle, so the mean of the data and the reference share their rotational average (a
radial profile about voxel ``n // 2``) up to the contrast sign, noise and blur. Both are
low-passed (Gaussian, amplitude 0.5 at ``lowpass_cycles_per_px``; the first CTF lobe keeps the
sign there), reduced to radial profiles inside the inscribed sphere, and correlated (Pearson,
weighted by the number of voxels per shell). ``r > +threshold`` → same contrast,
``r < −threshold`` → opposite contrast, otherwise undecided (the caller keeps the data as is and
says so). For two maps already in register (FSC against a reference) :func:`map_contrast_relation`
uses the low-frequency FSC shells directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.fsc import fsc
from cryoframe.geometry.grids import radial_frequency

__all__ = ["ContrastRelation", "contrast_relation", "map_contrast_relation", "resolve_contrast"]

_DIMS = (-3, -2, -1)


@dataclass(frozen=True)
class ContrastRelation:
    """Measured relation between data and a reference.

    Attributes
    ----------
    correlation : float
        Profile (or low-frequency FSC) correlation in [−1, 1].
    sign : int
        +1 same contrast, −1 opposite, 0 undecided (``|correlation| < threshold``).
    method : str
        ``"radial profile"`` or ``"low-frequency FSC"``.
    """

    correlation: float
    sign: int
    method: str

    def describe(self) -> str:
        """Short human-readable statement."""
        rel = {1: "same contrast", -1: "opposite contrast", 0: "contrast undecided"}[self.sign]
        return f"{rel} ({self.method} correlation {self.correlation:+.2f})"


def _as_tensor(x) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(torch.float32)


def _radial_profile(vol: Tensor, lowpass: float) -> tuple[Tensor, Tensor]:
    n = vol.shape[-1]
    k = radial_frequency((n, n, n), rfft=True)
    filt = torch.exp(-math.log(2) * (k / lowpass) ** 2)
    v = torch.fft.irfftn(torch.fft.rfftn(vol, dim=_DIMS) * filt, s=(n, n, n), dim=_DIMS)
    ax = torch.arange(n, dtype=torch.float32) - n // 2
    r = torch.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    shells = torch.round(r).long().flatten()
    n_sh = (n - 1) // 2 + 1  # inscribed sphere
    keep = shells < n_sh
    counts = torch.zeros(n_sh).index_add_(0, shells[keep], torch.ones(int(keep.sum())))
    sums = torch.zeros(n_sh).index_add_(0, shells[keep], v.flatten()[keep])
    return sums / counts.clamp_min(1), counts


def contrast_relation(data, reference, *, lowpass_cycles_per_px: float = 0.08,
                      threshold: float = 0.3) -> ContrastRelation:
    """Sign of the relation between centred data and a reference, without poses.

    Parameters
    ----------
    data : array or Tensor
        `(N, n, n, n)` subtomograms or one `(n, n, n)` map, centred on the particle.
    reference : array or Tensor
        `(n, n, n)` reference map, centred.
    lowpass_cycles_per_px : float
        Gaussian low-pass (amplitude 0.5) applied before profiling; at most 0.5.
    threshold : float
        Minimum ``|r|`` for a decision.

    Returns
    -------
    ContrastRelation
    """
    x, ref = _as_tensor(data), _as_tensor(reference)
    if x.ndim == 4:
        x = x.mean(0)
    if x.ndim != 3 or x.shape != ref.shape or len(set(x.shape)) != 1:
        raise InputError(f"data {tuple(x.shape)} and reference {tuple(ref.shape)}",
                         field="reference", expected="cubic volumes of the same box")
    lp = min(max(lowpass_cycles_per_px, 2.0 / x.shape[-1]), 0.5)
    pa, w = _radial_profile(x, lp)
    pb, _ = _radial_profile(ref, lp)
    w = w / w.sum()
    da, db = pa - (w * pa).sum(), pb - (w * pb).sum()
    den = math.sqrt(float((w * da * da).sum()) * float((w * db * db).sum()))
    r = float((w * da * db).sum()) / den if den > 0 else 0.0
    sign = 1 if r > threshold else (-1 if r < -threshold else 0)
    return ContrastRelation(r, sign, "radial profile")


def map_contrast_relation(map_a, map_b, *, max_shell_fraction: float = 0.125,
                          threshold: float = 0.1) -> ContrastRelation:
    """Sign of the relation of two maps in register, from their low-frequency FSC shells.

    The mean FSC over shells ``1 … max(2, max_shell_fraction · n)`` (DC excluded) is the
    correlation; maps of opposite contrast give a negative value.
    """
    _, curve = fsc(map_a, map_b)
    n = _as_tensor(map_a).shape[-1]
    hi = max(2, int(round(max_shell_fraction * n)))
    r = float(curve[1:hi + 1].mean())
    sign = 1 if r > threshold else (-1 if r < -threshold else 0)
    return ContrastRelation(r, sign, "low-frequency FSC")


def resolve_contrast(relation: ContrastRelation | None, *, invert_reference: bool = False,
                     invert_data: bool = False, auto: bool = True,
                     reference_name: str = "reference") -> tuple[int, int, str]:
    """Decide the signs applied to data and reference and the one line that says so.

    Explicit switches win; otherwise, with ``auto``, a detected opposite contrast inverts the
    reference. Returns ``(data_sign, reference_sign, message)``.
    """
    if invert_reference or invert_data:
        d, r = (-1 if invert_data else 1), (-1 if invert_reference else 1)
        what = " and ".join(n for n, f in ((reference_name, invert_reference),
                                            ("data", invert_data)) if f)
        msg = f"contrast: {what} inverted as requested"
        if relation is not None:
            agrees = relation.sign == 0 or relation.sign == d * r
            msg += f"; measured {relation.describe()}"
            if not agrees:
                msg += " — the switch disagrees with the measurement"
        return d, r, msg
    if relation is None:
        return 1, 1, "contrast: not checked"
    if relation.sign < 0 and auto:
        return 1, -1, (f"contrast: data and {reference_name} have {relation.describe()}; "
                       f"{reference_name} inverted (--no-auto-contrast keeps it)")
    if relation.sign < 0:
        return 1, 1, (f"contrast: data and {reference_name} have {relation.describe()}; kept "
                      "as is (--no-auto-contrast); pass --invert-reference to invert")
    if relation.sign == 0:
        return 1, 1, (f"contrast: {relation.describe()}; {reference_name} used as is "
                      "(pass --invert-reference if protein is dark in the data only)")
    return 1, 1, f"contrast: data and {reference_name} have {relation.describe()}"
