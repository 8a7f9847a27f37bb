"""Encoder weights shipped with the package (``cryoframe/weights/``, see MODEL_CARD.md there).

``load_pair_encoder()`` returns the NRCL-pretrained :class:`~cryoframe.models.pair.APTPairEncoder`
in evaluation mode; :func:`load_pair_encoder_file` reads any file written by
``cryoframe pretrain`` (``encoder.pt``: ``{"config", "state_dict", "meta"}``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from cryoframe._errors import InputError
from cryoframe.models.pair import APTPairEncoder

__all__ = ["SHIPPED_WEIGHTS", "shipped_weights_path", "load_pair_encoder",
           "load_pair_encoder_file"]

#: File name of the shipped encoder weights inside ``cryoframe/weights``.
SHIPPED_WEIGHTS = "apt_vit_cpu.pt"


def shipped_weights_path() -> Path:
    """Path of the shipped weights file (it may be absent in a source checkout)."""
    return Path(str(resources.files("cryoframe"))) / "weights" / SHIPPED_WEIGHTS


def load_pair_encoder_file(path: str | Path) -> tuple[APTPairEncoder, dict]:
    """Rebuild a pair encoder from an ``encoder.pt`` file; returns ``(encoder, meta)``."""
    p = Path(path)
    if not p.exists():
        raise InputError("weights file not found", file=p,
                         expected="an encoder.pt written by cryoframe pretrain")
    import pickle

    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        enc = APTPairEncoder(**blob["config"])
        enc.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"not an encoder weights file ({exc})", file=p,
                         expected="a file written by cryoframe pretrain (encoder.pt)") from None
    return enc.eval(), dict(blob.get("meta", {}))


def load_pair_encoder() -> APTPairEncoder:
    """The shipped NRCL-pretrained pair encoder (evaluation mode)."""
    return load_pair_encoder_file(shipped_weights_path())[0]
