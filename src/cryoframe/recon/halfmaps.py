"""FSC of two half maps on disk: the resolution summary behind ``cryoframe fsc``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryoframe._errors import InputError
from cryoframe.fourier.contrast import map_contrast_relation, resolve_contrast
from cryoframe.fourier.fsc import cfar, fsc, fsc_crossing
from cryoframe.io.mrc import read_mrc
from cryoframe.recon.halves import masked_fsc_corrected


def half_map_fsc(
    half1: Path, half2: Path, threshold: float = 0.143, mask: Path | None = None,
    pixel_size_angstrom: float | None = None, with_cfar: bool = False,
    invert_reference: bool = False, auto_contrast: bool = True,
) -> dict:
    """FSC summary of two half maps read from MRC files (``cryoframe fsc``).

    Parameters
    ----------
    half1, half2 : Path
        MRC half maps (cubic, same shape and voxel size).
    threshold : float
        FSC threshold.
    mask : Path, optional
        MRC mask (values in [0, 1]) applied to both maps; the FSC is then corrected for the
        mask by phase randomisation (:func:`cryoframe.recon.halves.masked_fsc_corrected`), the
        uncorrected and unmasked curves are returned beside it.
    pixel_size_angstrom : float, optional
        Override the header voxel size.
    with_cfar : bool
        Also compute cFAR (conical FSC area ratio).
    invert_reference : bool
        Negate the second map (e.g. a positive-density reference against a map of the
        physical contrast) without detection.
    auto_contrast : bool
        Negate the second map when the low-frequency FSC is negative (opposite contrast).

    Returns
    -------
    dict
        ``resolution_angstrom``, ``nyquist_limited``, ``pixel_size_angstrom``, ``threshold``,
        ``freq_per_angstrom``, ``fsc`` (lists), ``cfar`` when requested and, with a mask,
        ``fsc_masked_uncorrected`` and ``fsc_unmasked``.
    """
    if not 0 < threshold < 1:
        raise InputError(f"invalid threshold {threshold}", field="--threshold",
                         expected="0 < threshold < 1 (0.143 for half maps)")
    kw = {} if pixel_size_angstrom is None else {"voxel_size_angstrom": pixel_size_angstrom}
    m1, m2 = read_mrc(half1, **kw), read_mrc(half2, **kw)
    if m1.data.shape != m2.data.shape:
        raise InputError(f"shape {m2.data.shape} differs from {half1} {m1.data.shape}",
                         file=half2, field="data", expected=f"shape {m1.data.shape}")
    if m1.data.ndim != 3 or len(set(m1.data.shape)) != 1:
        raise InputError(f"not a cubic volume: {m1.data.shape}", file=half1, field="data",
                         expected="(n, n, n) half map")
    pix = m1.voxel_size_angstrom
    if abs(m2.voxel_size_angstrom - pix) > 1e-3 * pix:
        raise InputError(f"voxel size {m2.voxel_size_angstrom} Å differs from {pix} Å",
                         file=half2, field="voxel size", expected=f"{pix} Å")
    mask_data = None
    if mask is not None:
        mask_data = read_mrc(mask, **kw).data
        if mask_data.shape != m1.data.shape:
            raise InputError(f"mask shape {mask_data.shape} differs from maps {m1.data.shape}",
                             file=mask, field="data", expected=f"shape {m1.data.shape}")
        lo, hi = float(np.min(mask_data)), float(np.max(mask_data))
        if lo < -1e-3 or hi > 1 + 1e-3 or hi <= 0:
            raise InputError(f"mask values in [{lo:.3g}, {hi:.3g}]", file=mask, field="data",
                             expected="a mask with values in [0, 1], not all zero (a map "
                             "given as --mask?)")

    rel = map_contrast_relation(m1.data, m2.data)
    _, sign, contrast_msg = resolve_contrast(rel, invert_reference=invert_reference,
                                             auto=auto_contrast, reference_name=str(half2))
    data2 = m2.data if sign == 1 else -np.asarray(m2.data, dtype=np.float32)
    extra = {}
    freq, curve = fsc(m1.data, data2)
    if mask_data is not None:
        a, b, m = (torch.as_tensor(np.asarray(v, dtype=np.float32)) for v in
                   (m1.data, data2, mask_data))
        extra = {"fsc_masked_uncorrected": fsc(a, b, m)[1].tolist(),
                 "fsc_unmasked": curve.tolist()}
        curve = torch.as_tensor(masked_fsc_corrected(a, b, m, curve.numpy(), seed=0))
    f_cross, crossed = fsc_crossing(freq, curve, threshold)
    out = {
        "half1": str(half1),
        "half2": str(half2),
        "threshold": threshold,
        "pixel_size_angstrom": pix,
        # a curve below the threshold from the first shell on has no resolution (inf)
        "resolution_angstrom": pix / f_cross if f_cross > 0 else float("inf"),
        "nyquist_limited": not crossed,
        "freq_per_angstrom": (freq / pix).tolist(),
        "fsc": curve.tolist(),
        "contrast": contrast_msg,
        "contrast_correlation": rel.correlation,
        "sign_of_half2": sign,
        **extra,
    }
    if with_cfar:
        res = cfar(m1.data, data2, threshold=threshold, mask=mask_data)
        out["cfar"] = res.cfar
    return out
