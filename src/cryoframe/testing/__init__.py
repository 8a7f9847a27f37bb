"""Reusable checks for tests of cryoframe and of downstream code (shipped with the package)."""
