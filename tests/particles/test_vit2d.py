"""2D ViT contract: shapes, gradients, registry, input checks."""

from __future__ import annotations

import pytest
import torch

from cryoframe import InputError
from cryoframe.models.vit2d import VIT2D_CONFIGS, ViT2d, create_vit2d


def test_forward_features_and_head():
    m = create_vit2d("particle_vit_cpu", num_classes=2)
    x = torch.randn(3, 1, 64, 64)
    tok = m.forward_features(x)
    assert tok.shape == (3, 1 + 64, 128)
    assert m.forward_head(tok, pre_logits=True).shape == (3, 128)
    out = m(x)
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    out.sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing


def test_batch_independence_in_eval():
    m = create_vit2d().eval()
    x = torch.randn(4, 64, 64)
    full = m(x)
    single = torch.cat([m(x[i:i + 1]) for i in range(4)])
    assert torch.allclose(full, single, atol=1e-5)


def test_registry_and_b14_config():
    from cryoframe.models import create_model

    assert isinstance(create_model("particle_vit_cpu"), ViT2d)
    cfg = VIT2D_CONFIGS["particle_vit_b14"]
    assert (cfg["patch_size"], cfg["embed_dim"], cfg["depth"], cfg["num_heads"]) == (14, 768, 12, 12)


def test_bad_input_shape():
    with pytest.raises(InputError, match="64"):
        create_vit2d()(torch.randn(2, 1, 32, 32))


def test_rotation_averaged_features_are_invariant_to_quarter_turns():
    import math

    from cryoframe.geometry.transforms import rotate_images
    from cryoframe.particles.embed import embed_images

    torch.manual_seed(0)
    model = ViT2d(**{**VIT2D_CONFIGS["particle_vit_cpu"], "num_classes": 0}).eval()
    x = torch.zeros(3, 64, 64)
    x[:, 8:56, 8:56] = torch.randn(3, 48, 48)  # background border: no content leaves the box
    x90 = rotate_images(x, math.pi / 2)
    assert torch.allclose(rotate_images(x90, -math.pi / 2), x, atol=1e-5)  # exact quarter turn
    single, single90 = embed_images(model, x), embed_images(model, x90)
    assert (single - single90).abs().max() > 1e-2  # one pass is not invariant
    for n in (4, 8):
        f, f90 = (embed_images(model, im, in_plane_rotations=n) for im in (x, x90))
        assert torch.allclose(f, f90, atol=1e-4), n
    # the k = 0 term is the plain pass: n = 1 reproduces it exactly
    assert torch.equal(embed_images(model, x, in_plane_rotations=1), single)
    with pytest.raises(InputError, match="in_plane_rotations"):
        embed_images(model, x, in_plane_rotations=0)
