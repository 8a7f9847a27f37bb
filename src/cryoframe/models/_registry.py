"""A small model registry (timm style): ``create_model(name, **overrides)``.

Registered configurations:

- ``apt_vit_paper``: the paper's size (embedding 120, 4 blocks, 8 heads of 15, patch 4 → 512
  tokens on 32³) — faithful but slow on CPU (≈ 19 samples/s training, DESIGN.md).
- ``apt_vit_cpu``: the CPU default, embedding 128, 4 blocks, 8 heads of 16, patch 8 → 64 tokens
  (≈ 17× faster than 512 tokens and head dim 16 instead of 15, DESIGN.md measurements); phase
  selection by the centroid score alone (:mod:`cryoframe.models.phase_prior`): the learned
  steerable score measured 73 % of a training step on 2 CPU threads' worth of one core, the
  centroid score 4 % (``selector_share`` in the encoder-probe suite).
- ``vit_cpu``: plain ViT of the same size as ``apt_vit_cpu`` (reference without APT).
- ``apt_pair_cpu`` / ``apt_pair_paper``: the pair encoder of §3.1 at those sizes.
- ``cnn3d_cpu``: residual 3D CNN encoder (stem 12, stages 24/48/96; 144 features, ≈ 170 M multiply-adds per 32³ volume), the
  CPU-efficient backbone trained beside APT-ViT with the same budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cryoframe._errors import InputError
from cryoframe.models.cnn3d import CNN3dEncoder
from cryoframe.models.pair import APTPairEncoder
from cryoframe.models.vit3d import APTViT3d, ViT3d

__all__ = ["register_model", "create_model", "list_models", "MODEL_CONFIGS"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

#: Keyword arguments of each registered configuration.
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "apt_vit_paper": dict(patch_size=4, embed_dim=120, depth=4, num_heads=8),
    "apt_vit_cpu": dict(patch_size=8, embed_dim=128, depth=4, num_heads=8,
                        selector_learned=False),
    "vit_cpu": dict(patch_size=8, embed_dim=128, depth=4, num_heads=8),
    "apt_pair_paper": dict(patch_size=4, embed_dim=120, depth=4, num_heads=8),
    "apt_pair_cpu": dict(patch_size=8, embed_dim=128, depth=4, num_heads=8),
    "cnn3d_cpu": dict(width=12),
}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add a model factory under ``name`` (overwrites an existing entry)."""
    _REGISTRY[name] = factory


def list_models() -> list[str]:
    """Names of all registered models."""
    return sorted(_REGISTRY)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, with keyword overrides of its configuration."""
    if name not in _REGISTRY:
        raise InputError(f"unknown model '{name}'", field="model", expected=f"one of {list_models()}")
    return _REGISTRY[name](**overrides)


def _factory(cls: type[nn.Module], name: str) -> Callable[..., nn.Module]:
    def make(**overrides: Any) -> nn.Module:
        return cls(**{**MODEL_CONFIGS[name], **overrides})

    make.__name__ = name
    return make


for _name, _cls in [("apt_vit_paper", APTViT3d), ("apt_vit_cpu", APTViT3d), ("vit_cpu", ViT3d),
                    ("apt_pair_paper", APTPairEncoder), ("apt_pair_cpu", APTPairEncoder),
                    ("cnn3d_cpu", CNN3dEncoder)]:
    register_model(_name, _factory(_cls, _name))
