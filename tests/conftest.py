"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"

# The suite runs in two pytest-xdist workers (pyproject addopts) on 2-core machines: one torch
# thread per worker avoids oversubscription, which slows small kernels by an order of magnitude.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of real metadata / particle fixtures (see tests/data/README.md)."""
    return DATA


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
