"""Fourier-space tools: CTF, missing-wedge masks, filters, FSC / conical FSC / cFAR.

Frequencies are cycles/pixel (zyx order) in fftfreq layout unless a name says ``fftshift``;
"rfft" always means the half spectrum of ``torch.fft.rfftn``. Physical inputs are in Å.
"""

from cryoframe.fourier import ctf, filters, fsc, wedge

__all__ = ["ctf", "filters", "fsc", "wedge"]
