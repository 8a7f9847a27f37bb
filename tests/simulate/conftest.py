"""Fixtures of the CryoEngine tests: densities are simulated once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def proteasome():
    """3J9I (20S proteasome) at 10 Å/voxel, simulated from the bundled model."""
    from cryoframe.simulate.density import load_density

    return load_density("3J9I")


@pytest.fixture(scope="session")
def rubisco():
    """1BXN (RuBisCO) at 10 Å/voxel."""
    from cryoframe.simulate.density import load_density

    return load_density("1BXN")
