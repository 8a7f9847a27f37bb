"""cryoframe.simulate."""
