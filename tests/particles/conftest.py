"""Fixtures of the particle tests: a small bundled density."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def small_density() -> tuple[np.ndarray, float]:
    """The bundled 10 Å 3QM1 map (46³), centred."""
    from cryoframe.simulate.particles2d import centre_density, read_density_volume

    vol, vs = read_density_volume("3QM1")
    return centre_density(vol), vs
