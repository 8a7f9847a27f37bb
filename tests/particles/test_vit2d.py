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
