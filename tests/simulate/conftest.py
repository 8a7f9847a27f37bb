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


SHAPE = (96, 160, 160)


@pytest.fixture(scope="session")
def full_range(proteasome):
    """Noise-free ±90° tomogram with 4 particles, no drift (160×160×96)."""
    from cryoframe.simulate.config import TomogramConfig
    from cryoframe.simulate.engine import simulate_tomogram

    cfg = TomogramConfig(shape_zyx_px=SHAPE, n_particles=4, tilt_min_deg=-90, tilt_max_deg=90,
                         drift_std_px=0.0)
    return simulate_tomogram([proteasome], cfg, seed=0)


@pytest.fixture(scope="session")
def wedge_60(proteasome):
    """Noise-free ±60° tomogram with 6 particles, drift 0.5 px, aligned."""
    from cryoframe.simulate.config import TomogramConfig
    from cryoframe.simulate.engine import simulate_tomogram

    cfg = TomogramConfig(shape_zyx_px=SHAPE, n_particles=6, drift_std_px=0.5)
    return simulate_tomogram([proteasome], cfg, seed=1)
