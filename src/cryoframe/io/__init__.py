"""cryoframe.io."""
