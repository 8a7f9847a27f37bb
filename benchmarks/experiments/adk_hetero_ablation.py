"""One adk-hetero training run with changed settings (the ablations in ``adk_hetero_ablations.md``).

Usage::

    python benchmarks/experiments/adk_hetero_ablation.py NAME [key=value ...] [--out FILE]

Keys: ``traj`` (adk_dims2), ``nper`` images per frame (2), ``box`` (64), ``px`` Å/px (2.0),
``seed`` (0), ``dose`` e/Å² (100; 1e8 is noiseless), ``fit_noise_std`` (the noise σ the data
term is normalised by; default the simulation's); GNN-only decoder changes ``gain0`` (initial residual gains, 0), ``erelu`` (1: ReLU
after the embedding), ``ebias`` (initial embedding bias, 0); ``unit`` (displacement output unit in
Å for both decoders, 10); any other key is a :class:`cryoframe.hetero.train.TrainConfig` field
(e.g. ``decoder=mlp``, ``epochs=80``, ``poses=esl``). Other settings are the full adk-hetero
suite's. One JSON line (final mean C-alpha RMSD, RMSD every 5 epochs, final GCN gains) is
printed and appended to ``--out`` (default ``adk_hetero_ablations.jsonl`` in the working folder).
One torch thread.
"""

from __future__ import annotations

import json
import sys
import time

import torch

import cryoframe.hetero.decoders as decoders
from cryoframe.data import structure_path, trajectory_paths
from cryoframe.hetero.ensemble import load_ensemble, load_template
from cryoframe.hetero.graph import build_backbone_graph
from cryoframe.hetero.images import ImagingConfig, simulate_images
from cryoframe.hetero.train import TrainConfig, train_autodecoder

torch.set_num_threads(1)
argv = sys.argv[1:]
out_path = "adk_hetero_ablations.jsonl"
if "--out" in argv:
    i = argv.index("--out")
    out_path = argv[i + 1]
    argv = argv[:i] + argv[i + 2:]
name, kv = argv[0], dict(a.split("=", 1) for a in argv[1:])


def opt(key, default, cast=float):
    return cast(kv.pop(key)) if key in kv else default


traj, nper = opt("traj", "adk_dims2", str), opt("nper", 2, int)
box, px, seed = opt("box", 64, int), opt("px", 2.0), opt("seed", 0, int)
dose, fit_noise_std = opt("dose", 100.0), opt("fit_noise_std", None)
unit, gain0 = opt("unit", 10.0), opt("gain0", 0.0)
erelu, ebias = opt("erelu", 0, int), opt("ebias", 0.0)
cfg_kw = {}
for key, val in kv.items():
    if key in ("decoder", "poses", "data_term"):
        cfg_kw[key] = val
    elif key == "use_r2":
        cfg_kw[key] = val == "1"
    else:
        cfg_kw[key] = type(TrainConfig.model_fields[key].default)(val)


class _ReluEmbedding(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(z))


def _make_decoder(kind, x0, edge_index=None, latent_dim=8):
    dec = decoders.make_decoder(kind, x0, edge_index, latent_dim)
    dec.unit = unit
    if kind == "gnn":
        with torch.no_grad():
            dec.gain.fill_(gain0)
            dec.embed.bias.fill_(ebias)
        if erelu:
            dec.embed = _ReluEmbedding(dec.embed)
    return dec


template = load_template(structure_path("1AKE"), "A")
ens = load_ensemble(*trajectory_paths(traj), template)
graph = build_backbone_graph(template.backbone_zyx_angstrom, template.residue_names)
imaging = ImagingConfig(box_px=box, pixel_size_angstrom=px, dose_e_per_angstrom2=dose)
data = simulate_images(ens, nper, imaging, seed=seed)
truth = torch.as_tensor(ens.ca_zyx_angstrom)[data.conformation]
cfg = TrainConfig(**{"batch_size": 8, "epochs": 40, "log_rmsd_every": 5, "seed": seed,
                     "esl_grid_step_deg": 10.0, "esl_coarse_step_deg": 30.0,
                     "esl_search_every": 8, "esl_data_bin": 2, **cfg_kw})
t0 = time.time()
res = train_autodecoder(data.images, data.defocus_angstrom, fit_noise_std or data.noise_std,
                        imaging, template, graph, cfg, rotations=data.rotations if cfg.poses == "known" else None,
                        ground_truth_ca=truth, show_progress=False, decoder_factory=_make_decoder)
row = {"name": name, "args": argv[1:], "rmsd": float(res.rmsd_angstrom.mean()),
       "wall_s": round(time.time() - t0, 1), "snr": data.snr,
       "curve": [(h["epoch"], round(h["rmsd"], 3)) for h in res.history if "rmsd" in h]}
if cfg.decoder == "gnn":
    row["gains"] = [round(float(v), 3) for v in res.decoder.gain.detach()]
print(json.dumps(row))
with open(out_path, "a") as fh:
    fh.write(json.dumps(row) + "\n")
