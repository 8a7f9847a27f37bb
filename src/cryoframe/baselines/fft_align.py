"""Exhaustive FFT-based alignment as a reference method (the sub5 suites' classical baseline).

The implementation is the Fourier alignment core in :mod:`cryoframe.tasks.fft_align` (the
learned aligner and averaging use it too); this module names it as a baseline.
"""

from cryoframe.fourier.wedge import rotate_fourier_mask, wedge_mask
from cryoframe.tasks.fft_align import AlignResult, FFTAligner

__all__ = ["AlignResult", "FFTAligner", "rotate_fourier_mask", "wedge_mask"]
