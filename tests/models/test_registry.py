"""Contract test over every registered model (timm style)."""

import pytest
import torch

from cryoframe import InputError
from cryoframe.models import create_model, list_models

SMALL = dict(embed_dim=32, depth=1, num_heads=4)


@pytest.mark.parametrize("name", list_models())
def test_registered_model_contract(name):
    overrides = dict(width=4) if name.startswith("cnn") else dict(SMALL)
    if "paper" in name:
        overrides.update(volume_size=16)  # patch 4 on a 16³ box keeps the test fast
    model = create_model(name, **overrides).train()
    inputs = model.example_inputs(2)
    feats = model.forward_features(*inputs)
    assert feats.ndim in (2, 3) and feats.shape[0] == 2  # tokens (ViTs) or pooled (CNN)
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    out = model(*inputs)
    loss = out.pow(2).mean()
    if hasattr(model, "transform"):
        t = model.transform(*inputs)
        assert t["rotation"].shape == (2, 3, 3)
        loss = loss + t["rotation"].sum() + t["shift_zyx_px"].sum()
    loss.backward()
    assert torch.isfinite(out).all()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


def test_unknown_model_is_an_input_error():
    with pytest.raises(InputError, match="unknown model"):
        create_model("no_such_model")
