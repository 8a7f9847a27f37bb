"""Encoder weights shipped with the package (``cryoframe/weights/``, see MODEL_CARD.md there).

``load_encoder()`` returns the shipped single-subtomogram encoder (:data:`SHIPPED_ENCODER`, the
one that won the probe on unseen structures) for embedding, classification and clustering;
:func:`load_encoder_file` reads any encoder file (format tag :data:`ENCODER_FORMAT`).
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

__all__ = ["SHIPPED_WEIGHTS", "SHIPPED_ENCODER", "shipped_encoder_path", "load_encoder",
           "shipped_weights_path", "load_pair_encoder",
           "load_pair_encoder_file", "ENCODER_FORMAT", "save_encoder_file", "load_encoder_file"]

#: Format tag of single-volume encoder files (any registry backbone).
ENCODER_FORMAT = "cryoframe.encoder/1"

#: File name of the shipped pair-encoder weights (NRCL APT-ViT, used by the learned aligner).
SHIPPED_WEIGHTS = "apt_vit_cpu.pt"
#: File name of the shipped single-subtomogram encoder (embed, classify, cluster).
SHIPPED_ENCODER = "subtomo_encoder.pt"


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


def save_encoder_file(path: str | Path, encoder: torch.nn.Module, model_name: str,
                      overrides: dict, meta: dict) -> None:
    """Write an encoder (registry name + overrides + weights + provenance) atomically."""
    from cryoframe._atomic import atomic_path

    blob = {"format": ENCODER_FORMAT, "model": model_name, "overrides": dict(overrides),
            "state_dict": encoder.state_dict(), "meta": dict(meta)}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_encoder_file(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild an encoder written by :func:`save_encoder_file`; returns ``(encoder, meta)``.

    Older pair-encoder files (``cryoframe pretrain`` NRCL) are accepted too.
    """
    import pickle

    from cryoframe.models._registry import create_model

    p = Path(path)
    if not p.exists():
        raise InputError("weights file not found", file=p, expected="an encoder.pt file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"not a torch weights file ({exc})", file=p,
                         expected="an encoder.pt written by cryoframe") from None
    if not isinstance(blob, dict) or blob.get("format") != ENCODER_FORMAT:
        if isinstance(blob, dict) and "config" in blob and "state_dict" in blob:
            return load_pair_encoder_file(p)
        raise InputError("not an encoder weights file", file=p, field="format",
                         expected=ENCODER_FORMAT)
    try:
        enc = create_model(blob["model"], **blob["overrides"])
        enc.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"encoder weights do not match their model ({exc})", file=p,
                         field="state_dict", expected=f"weights of {blob.get('model')}") from None
    return enc.eval(), {"model": blob["model"], **dict(blob.get("meta", {}))}


def shipped_encoder_path() -> Path:
    """Path of the shipped single-subtomogram encoder file."""
    return Path(str(resources.files("cryoframe"))) / "weights" / SHIPPED_ENCODER


def load_encoder() -> tuple[torch.nn.Module, dict]:
    """The shipped single-subtomogram encoder (evaluation mode) and its provenance."""
    return load_encoder_file(shipped_encoder_path())
