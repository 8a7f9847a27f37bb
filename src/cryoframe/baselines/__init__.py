"""cryoframe.baselines."""
