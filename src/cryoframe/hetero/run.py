"""A finished ``hetero train`` run folder read back: options, data, template and fitted model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cryoframe._errors import InputError
from cryoframe.hetero.dataset import HeteroDataset, load_dataset
from cryoframe.hetero.decoders import LatentTable, load_decoder_state, make_decoder
from cryoframe.hetero.ensemble import Template, load_template
from cryoframe.hetero.graph import BackboneGraph, build_backbone_graph
from cryoframe.train.checkpoint import load_state


def template_tensor(template: Template) -> torch.Tensor:
    """Template C-alpha trace as a float32 tensor `(n_res, 3)` (Å, zyx)."""
    return torch.as_tensor(template.ca_zyx_angstrom, dtype=torch.float32)


@dataclass
class TrainedRun:
    """Everything ``hetero evaluate`` needs from a run folder."""

    record: dict  #: the options of ``hetero train`` (dataset, template, chain, train)
    config: dict  #: the training config stored in the checkpoint
    data: HeteroDataset
    template: Template
    graph: BackboneGraph
    decoder: torch.nn.Module
    latents: LatentTable
    support: Any  #: ESL pose support from the checkpoint, or None


def load_trained_run(run: str | Path) -> TrainedRun:
    """Read ``run.json`` and ``checkpoint.pt`` of a ``cryoframe hetero train`` run folder.

    Older records keep the options at the top level, newer ones under ``"config"``.
    """
    run = Path(run)
    rec_path, ckpt_path = run / "run.json", run / "checkpoint.pt"
    if not rec_path.exists() or not ckpt_path.exists():
        raise InputError("not a training run folder", file=run,
                         expected="run.json and checkpoint.pt from 'cryoframe hetero train'")
    rec = json.loads(rec_path.read_text())
    rec = rec.get("config", rec)  # the run record keeps the options under "config"
    data = load_dataset(rec["dataset"])
    tmpl = load_template(rec["template"], rec["chain"], data.imaging.voltage_kv)
    graph = build_backbone_graph(tmpl.backbone_zyx_angstrom, tmpl.residue_names)
    state = load_state(ckpt_path)
    cfg = state["config"]
    dec = make_decoder(cfg["decoder"], template_tensor(tmpl), graph.edge_index,
                       cfg["latent_dim"])
    load_decoder_state(dec, state, ckpt_path)
    lat = LatentTable(len(data.images), cfg["latent_dim"])
    lat.load_state_dict(state["latents"])
    return TrainedRun(rec, cfg, data, tmpl, graph, dec, lat, state.get("support"))
