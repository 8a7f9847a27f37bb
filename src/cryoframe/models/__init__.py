"""cryoframe.models."""
