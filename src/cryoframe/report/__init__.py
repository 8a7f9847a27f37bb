"""cryoframe.report."""
