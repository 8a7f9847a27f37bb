"""cryoframe.geometry."""
