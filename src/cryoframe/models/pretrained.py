"""The one loader for every shipped or user weights file (``cryoframe/weights/``, MODEL_CARD.md).

Every file is a ``torch.save`` of a plain dict, read with ``torch.load(weights_only=True)`` through
:func:`read_weights`, which gives one :class:`~cryoframe._errors.InputError` for a missing file, an
unreadable file or a file of the wrong kind. Shipped files are found through
:mod:`importlib.resources` (:func:`shipped_path`). Kinds (``"format"`` tag in the file):

- single-volume encoder (:data:`ENCODER_FORMAT`, any registry backbone): :func:`load_encoder`
  (shipped :data:`SHIPPED_ENCODER`, the one that won the probe on unseen structures, for
  embedding, classification and clustering) and :func:`load_encoder_file`;
- NRCL pair encoder (``cryoframe pretrain``; untagged ``{"config", "state_dict", "meta"}``):
  :func:`load_pair_encoder` (shipped :data:`SHIPPED_WEIGHTS`, used by the learned aligner) and
  :func:`load_pair_encoder_file`;
- correlation head of the posterior aligner (:data:`CORRELATION_HEAD_FORMAT`,
  ``benchmarks/runs/correlation_head/train.py``): :func:`load_correlation_head` (shipped
  :data:`SHIPPED_CORRELATION_HEAD`);
- particle encoder / ranker (:data:`PARTICLE_ENCODER_FORMAT`, :data:`PARTICLE_RANKER_FORMAT`,
  ``cryoframe particles pretrain``): :func:`load_particle_encoder`, :func:`load_particle_ranker`,
  :func:`read_particle_checkpoint`.
"""

from __future__ import annotations

import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from cryoframe._atomic import atomic_path
from cryoframe._errors import InputError
from cryoframe.models._registry import create_model
from cryoframe.models.correlation_head import CORRELATION_HEAD_FORMAT, SpectralCorrelationHead
from cryoframe.models.pair import APTPairEncoder
from cryoframe.models.vit2d import VIT2D_CONFIGS, ParticleRanker, ViT2d

__all__ = ["SHIPPED_WEIGHTS", "SHIPPED_ENCODER", "SHIPPED_PARTICLE", "ENCODER_FORMAT",
           "PARTICLE_ENCODER_FORMAT", "PARTICLE_RANKER_FORMAT", "shipped_path",
           "shipped_weights_path", "shipped_encoder_path", "read_weights", "save_weights",
           "load_encoder", "load_encoder_file", "save_encoder_file",
           "load_pair_encoder", "load_pair_encoder_file",
           "read_particle_checkpoint", "particle_encoder_state", "save_particle_checkpoint",
           "load_particle_encoder", "load_particle_ranker", "SHIPPED_CORRELATION_HEAD",
           "load_correlation_head", "load_correlation_head_file"]

#: Format tag of single-volume encoder files (any registry backbone).
ENCODER_FORMAT = "cryoframe.encoder/1"
#: Format tags of particle (2D) encoder and ranker checkpoints.
PARTICLE_ENCODER_FORMAT = "cryoframe-particle-encoder-v1"
PARTICLE_RANKER_FORMAT = "cryoframe-particle-ranker-v1"

#: File name of the shipped pair-encoder weights (NRCL APT-ViT, used by the learned aligner).
SHIPPED_WEIGHTS = "apt_vit_cpu.pt"
#: File name of the shipped single-subtomogram encoder (embed, classify, cluster).
SHIPPED_ENCODER = "subtomo_encoder.pt"
#: File name of the shipped correlation head of the posterior aligner.
SHIPPED_CORRELATION_HEAD = "correlation_head.pt"
#: File names of the shipped particle encoder and ranker.
SHIPPED_PARTICLE = {"encoder": "particle_vit_cpu.pt", "ranker": "particle_ranker_cpu.pt"}


def shipped_path(name: str) -> Path:
    """Path of a shipped weights file ``cryoframe/weights/<name>`` (it may be absent)."""
    return Path(str(resources.files("cryoframe").joinpath("weights", name)))


def shipped_weights_path() -> Path:
    """Path of the shipped pair-encoder weights file (it may be absent in a source checkout)."""
    return shipped_path(SHIPPED_WEIGHTS)


def shipped_encoder_path() -> Path:
    """Path of the shipped single-subtomogram encoder file."""
    return shipped_path(SHIPPED_ENCODER)


def _shipped_particle_path(kind: str) -> Path:
    name = SHIPPED_PARTICLE.get(kind)
    if name is None:
        raise InputError(f"unknown weights kind '{kind}'", field="kind",
                         expected="'encoder' or 'ranker'")
    return shipped_path(name)


def save_weights(path: str | Path, blob: dict[str, Any]) -> Path:
    """Write a weights dict atomically (``torch.save``; loadable with ``weights_only=True``)."""
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def read_weights(path: str | Path, formats: tuple[str, ...], field: str = "weights",
                 expected: str = "a weights file written by cryoframe") -> dict[str, Any]:
    """Read a weights dict and check its ``format`` tag.

    Parameters
    ----------
    path : str or Path
        The file.
    formats : tuple of str
        Accepted format tags; ``""`` accepts the untagged NRCL pair-encoder files
        (``{"config", "state_dict", "meta"}``).
    field : str
        The option or argument that named the file (for the error message).
    expected : str
        What the file should have been (for the error message).

    Returns
    -------
    dict
        The stored dict, with ``"path"`` added.

    Raises
    ------
    InputError
        Missing file, unreadable file, or a file of another kind.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("weights file not found", file=p, field=field, expected=expected)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise InputError(f"not a torch weights file ({type(exc).__name__}: {str(exc)[:80]})",
                         file=p, field=field, expected=expected) from None
    fmt = blob.get("format", "") if isinstance(blob, dict) else None
    if fmt == "" and not ("config" in blob and "state_dict" in blob):
        fmt = None
    if fmt not in formats:
        raise InputError(f"not an encoder or checkpoint of the expected kind (format {fmt!r})",
                         file=p, field="format", expected=expected)
    blob["path"] = str(p)
    return blob


def load_pair_encoder_file(path: str | Path) -> tuple[APTPairEncoder, dict]:
    """Rebuild a pair encoder from an ``encoder.pt`` file; returns ``(encoder, meta)``."""
    blob = read_weights(path, ("",), expected="an encoder.pt written by cryoframe pretrain")
    try:
        enc = APTPairEncoder(**blob["config"])
        enc.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"pair-encoder weights do not match their model ({exc})", file=path,
                         field="state_dict",
                         expected="a file written by cryoframe pretrain (encoder.pt)") from None
    return enc.eval(), dict(blob.get("meta", {}))


def load_pair_encoder(path: str | Path | None = None) -> APTPairEncoder:
    """A pair encoder (evaluation mode) from ``path``, or the shipped NRCL-pretrained one."""
    return load_pair_encoder_file(shipped_weights_path() if path is None else path)[0]


def save_encoder_file(path: str | Path, encoder: torch.nn.Module, model_name: str,
                      overrides: dict, meta: dict) -> None:
    """Write an encoder (registry name + overrides + weights + provenance) atomically."""
    save_weights(path, {"format": ENCODER_FORMAT, "model": model_name,
                        "overrides": dict(overrides), "state_dict": encoder.state_dict(),
                        "meta": dict(meta)})


def load_encoder_file(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild an encoder written by :func:`save_encoder_file`; returns ``(encoder, meta)``.

    Older pair-encoder files (``cryoframe pretrain`` NRCL) are accepted too.
    """
    blob = read_weights(path, (ENCODER_FORMAT, ""), expected="an encoder.pt written by cryoframe")
    if blob.get("format", "") == "":
        return load_pair_encoder_file(path)
    try:
        enc = create_model(blob["model"], **blob["overrides"])
        enc.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"encoder weights do not match their model ({exc})", file=path,
                         field="state_dict", expected=f"weights of {blob.get('model')}") from None
    return enc.eval(), {"model": blob["model"], **dict(blob.get("meta", {}))}


def load_encoder(path: str | Path | None = None) -> tuple[torch.nn.Module, dict]:
    """A single-subtomogram encoder (evaluation mode) and its provenance: ``path`` or the shipped
    one.
    """
    return load_encoder_file(shipped_encoder_path() if path is None else path)


def read_particle_checkpoint(path: str | Path | None = None, kind: str = "encoder",
                             field: str = "weights") -> dict[str, Any]:
    """Read a particle encoder / ranker checkpoint (default: the shipped file of ``kind``)."""
    return read_weights(path if path is not None else _shipped_particle_path(kind),
                        (PARTICLE_ENCODER_FORMAT, PARTICLE_RANKER_FORMAT), field=field,
                        expected="a checkpoint from `cryoframe particles pretrain` (or the "
                                 "shipped cryoframe/weights files)")


def particle_encoder_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The encoder weights of a particle encoder or ranker checkpoint dict (any head dropped)."""
    state = ckpt["state_dict"]
    if ckpt["format"] == PARTICLE_RANKER_FORMAT:
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def save_particle_checkpoint(path: str | Path, model: torch.nn.Module, fmt: str,
                             config: dict[str, Any], meta: dict[str, Any] | None = None,
                             model_name: str = "particle_vit_cpu") -> Path:
    """Save particle weights + architecture as a plain dict (loadable with ``weights_only``)."""
    return save_weights(path, {
        "format": fmt, "model": model_name, "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {})})


def _particle_vit(ckpt: dict[str, Any]) -> ViT2d:
    cfg = {**VIT2D_CONFIGS.get(ckpt.get("model", ""), {}), **ckpt.get("config", {})}
    cfg["num_classes"] = 0
    return ViT2d(**cfg)


def load_particle_encoder(path: str | Path | None = None) -> ViT2d:
    """Particle encoder (eval mode) from an encoder or ranker checkpoint (default: shipped)."""
    ckpt = read_particle_checkpoint(path, "encoder")
    model = _particle_vit(ckpt)
    model.load_state_dict(particle_encoder_state(ckpt), strict=True)
    return model.eval()


def load_particle_ranker(path: str | Path | None = None) -> ParticleRanker:
    """Particle ranker (eval mode) from a ranker checkpoint (default: the shipped one)."""
    ckpt = read_particle_checkpoint(path, "ranker")
    if ckpt["format"] != PARTICLE_RANKER_FORMAT:
        raise InputError("this checkpoint is an encoder without a ranking head",
                         file=ckpt["path"], field="format",
                         expected=f"'{PARTICLE_RANKER_FORMAT}' (from `cryoframe particles "
                         "pretrain --ranker` or the shipped ranker)")
    model = ParticleRanker(_particle_vit(ckpt))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()


def load_correlation_head_file(path: str | Path | None = None
                               ) -> tuple[SpectralCorrelationHead, dict]:
    """``(head, meta)`` of the posterior aligner's correlation head (default: the shipped one).

    ``meta["voxel_size_angstrom"]`` is the sampling the head was trained at.
    """
    p = shipped_path(SHIPPED_CORRELATION_HEAD) if path is None else Path(path)
    blob = read_weights(p, (CORRELATION_HEAD_FORMAT,),
                        expected="a correlation head written by cryoframe (correlation_head.pt)")
    try:
        head = SpectralCorrelationHead(**blob["config"])
        head.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"correlation-head weights do not match their model ({exc})", file=p,
                         field="state_dict", expected="a file written by cryoframe") from None
    return head.eval(), dict(blob.get("meta", {}))


def load_correlation_head(path: str | Path | None = None) -> SpectralCorrelationHead:
    """The posterior aligner's correlation head from ``path`` (default: the shipped one)."""
    return load_correlation_head_file(path)[0]
