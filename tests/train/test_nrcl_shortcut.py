"""NRCL has no shortcut: at random initialisation no half of the pair embedding finds the positive.

All samples are the same structure in random poses, so nothing but a shared volume, noise draw or
orientation could tell a sample's positive from the 63 other rows. With the views of
:func:`make_nrcl_views` each half of ``q1 = f(X1, X)`` retrieves ``k2 = f(X2, X')`` at chance; the
control shows that the same measurement catches the old construction, where both pairs held X.
"""

import numpy as np
import torch

from cryoframe.models import create_model
from cryoframe.train.augment3d import make_nrcl_views

B = 64


def _blob_batch(n: int, seed: int = 0) -> torch.Tensor:
    """One elongated two-lobed particle in n random poses (32³)."""
    from cryoframe.geometry.rotations import random_rotations
    from cryoframe.geometry.transforms import rotate_volumes

    z, y, x = torch.meshgrid(*[torch.arange(32.0) - 16] * 3, indexing="ij")
    vol = torch.exp(-((z - 4) ** 2 / 18 + y**2 / 8 + x**2 / 8)) + 0.7 * torch.exp(
        -((z + 5) ** 2 + (y - 3) ** 2 + x**2) / 10)
    R = random_rotations(n, generator=torch.Generator().manual_seed(seed))
    return rotate_volumes(vol[None].repeat(n, 1, 1, 1), R)


def _retrieval(q: torch.Tensor, k: torch.Tensor) -> float:
    qn = torch.nn.functional.normalize(q, dim=-1)
    kn = torch.nn.functional.normalize(k, dim=-1)
    return float(((qn @ kn.T).argmax(1) == torch.arange(len(q))).float().mean())


def test_no_half_of_the_pair_embedding_retrieves_the_positive():
    torch.manual_seed(0)
    enc = create_model("apt_pair_cpu", embed_dim=32, depth=1, num_heads=4).eval()
    views = make_nrcl_views(_blob_batch(B), torch.arange(B), step=0, seed=0,
                            input_snrs=(1.0, 0.3, 0.1))
    e = enc.num_features // 2
    with torch.no_grad():
        q1 = enc.embed(views["x1"], views["x"])
        k2 = enc.embed(views["x2"], views["x_b"])
        shared = enc.embed(views["x2"], views["x"])  # the old construction: both pairs hold X
    first, second = _retrieval(q1[:, :e], k2[:, :e]), _retrieval(q1[:, e:], k2[:, e:])
    chance = 1 / B
    # P(>= 6 of 64 hits | p = 1/64) < 1e-3
    assert first <= 5 / B and second <= 5 / B, (first, second, chance)
    assert _retrieval(q1[:, e:], shared[:, e:]) > 0.5  # the measurement does catch a shared X


def test_views_share_no_volume():
    views = make_nrcl_views(_blob_batch(8), torch.arange(8), step=3, seed=1)
    for a, b in [("x", "x_b"), ("x1", "x2"), ("x", "x2"), ("x1", "x_b")]:
        diff = (views[a] - views[b]).abs().amax(dim=(1, 2, 3, 4))
        assert torch.all(diff > 0.1), (a, b)
    # the transform branch still sees X1 = T X within its own pair
    assert np.isfinite(views["rotation"].numpy()).all()
