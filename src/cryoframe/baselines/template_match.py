"""Classification by template matching with clean templates (an upper reference, not a method).

Each subtomogram is aligned to every class template with :class:`FFTAligner` (global SO(3) grid,
FFT translations, missing-wedge-constrained correlation, short local refinement); the class is the
template with the highest normalised correlation, and a softmax of the correlations (temperature
``1/beta``) gives pseudo-probabilities. It needs the true, noise-free class maps, which real data
never offers; that is why it is reported as an upper reference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.contrast import contrast_relation
from cryoframe.tasks.fft_align import FFTAligner

__all__ = ["template_match_scores", "classify_by_templates"]


def template_match_scores(
    volumes,
    templates,
    particle_mask: Tensor | None = None,
    aligner: FFTAligner | None = None,
    batch_size: int = 64,
    contrast: str = "auto",
) -> np.ndarray:
    """Best constrained correlation of each volume with each template.

    Parameters
    ----------
    volumes : array or Tensor
        `(N, n, n, n)` subtomograms.
    templates : array or Tensor
        `(C, n, n, n)` clean class maps (centred, any pose).
    particle_mask : Tensor, optional
        `(n, n, n)` full-spectrum Fourier mask of the wedge the volumes sample.
    aligner : FFTAligner, optional
        Search settings; default a 40° grid with 2 refinement steps.
    batch_size : int
        Volumes aligned at once.
    contrast : {"auto", "as-is", "invert"}
        Relation between the templates and the data: ``"auto"`` measures it
        (:func:`cryoframe.fourier.contrast.contrast_relation`, data against the mean template)
        and inverts the templates when it is opposite, with a :class:`UserWarning` saying so;
        ``"invert"`` always negates them; ``"as-is"`` never does.

    Returns
    -------
    np.ndarray
        `(N, C)` scores (normalised correlation, ≤ 1).
    """
    x = torch.as_tensor(np.asarray(volumes), dtype=torch.float32)
    t = torch.as_tensor(np.asarray(templates), dtype=torch.float32)
    if x.ndim != 4 or t.ndim != 4 or x.shape[1:] != t.shape[1:]:
        raise InputError(f"volumes {tuple(x.shape)} and templates {tuple(t.shape)}",
                         field="templates", expected="(N, n, n, n) and (C, n, n, n), same n")
    if contrast not in ("auto", "as-is", "invert"):
        raise InputError(f"unknown contrast mode '{contrast}'", field="contrast",
                         expected="auto, as-is or invert")
    if contrast == "invert":
        t = -t
    elif contrast == "auto":
        import warnings


        rel = contrast_relation(x, t.mean(0))
        if rel.sign < 0:
            t = -t
            warnings.warn(f"template matching: data and templates have {rel.describe()}; "
                          "templates inverted (contrast='as-is' keeps them)", stacklevel=2)
    aligner = aligner or FFTAligner(step_deg=40.0, refine_steps=2)
    out = np.zeros((x.shape[0], t.shape[0]), dtype=np.float32)
    for c in range(t.shape[0]):
        for s0 in range(0, x.shape[0], batch_size):
            res = aligner.align_to_reference(x[s0:s0 + batch_size], t[c],
                                             particle_mask=particle_mask)
            out[s0:s0 + batch_size, c] = res.scores.numpy()
    return out


def classify_by_templates(scores: np.ndarray, beta: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """`(N, C)` scores → `(N,)` labels and `(N, C)` softmax pseudo-probabilities."""
    s = np.asarray(scores, dtype=np.float64) * beta
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.argmax(scores, axis=1), p
