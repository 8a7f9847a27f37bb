"""cryoframe.fourier."""
