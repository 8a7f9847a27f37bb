"""Maps from particles: Fourier insertion, gold-standard half maps, tilt-series particles.

Modules: :mod:`~cryoframe.recon.insertion` (direct Fourier insertion, Wiener map),
:mod:`~cryoframe.recon.halves` (regularisation from the half-map FSC, resolution, cFAR),
:mod:`~cryoframe.recon.reconstruct` (2D particle STAR + MRCS → maps),
:mod:`~cryoframe.recon.tomo` (RELION-5 / WarpTools tilt-series particles → maps).
"""
