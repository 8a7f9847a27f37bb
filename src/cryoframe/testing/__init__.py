"""cryoframe.testing."""
