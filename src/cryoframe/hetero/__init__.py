"""cryoframe.hetero."""
