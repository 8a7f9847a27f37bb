"""cryoframe.models: APT-ViT (3D), the §3.1 pair encoder, heads and a model registry.

Use :func:`create_model` with a registered name (:func:`list_models`), e.g. ``"apt_vit_cpu"``.
"""

from cryoframe.models import vit2d as _vit2d  # noqa: F401  (registers the 2D particle models)
from cryoframe.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
