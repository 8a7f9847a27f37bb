"""Can both decoders represent the AdK transition? Fit them directly to the 102 true C-alpha
traces (one learnable latent per frame, MSE on coordinates, Adam 1e-3, batch 8, 3,000 steps; no
images, no regularisers) and print the mean Kabsch RMSD every 500 steps. First, the linear
reference: mean Kabsch RMSD of rank-k PCA reconstructions of the frames after iterative
superposition onto their mean. One torch thread.

    python benchmarks/experiments/adk_hetero_supervised_fit.py
"""

from __future__ import annotations

import time

import torch

from cryoframe.data import structure_path, trajectory_paths
from cryoframe.hetero.decoders import LatentTable, make_decoder
from cryoframe.hetero.ensemble import load_ensemble, load_template
from cryoframe.hetero.graph import build_backbone_graph
from cryoframe.hetero.rmsd import kabsch_rmsd

torch.set_num_threads(1)
template = load_template(structure_path("1AKE"), "A")
ens = load_ensemble(*trajectory_paths("adk_dims2"), template)
graph = build_backbone_graph(template.backbone_zyx_angstrom, template.residue_names)
truth = torch.as_tensor(ens.ca_zyx_angstrom, dtype=torch.float32)
x0 = torch.as_tensor(template.ca_zyx_angstrom, dtype=torch.float32)
print("template", float(kabsch_rmsd(x0[None].expand_as(truth), truth).mean()))


def superpose(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``p`` rotated and translated onto ``q`` (Kabsch, float64)."""
    pc, qc = p - p.mean(0), q - q.mean(0)
    u, _, vt = torch.linalg.svd(pc.T @ qc)
    d = torch.sign(torch.linalg.det(u @ vt))
    return pc @ (u @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=p.dtype)) @ vt) + q.mean(0)


frames = truth.to(torch.float64)
ref = frames[0]
for _ in range(4):
    aligned = torch.stack([superpose(x, ref) for x in frames])
    ref = aligned.mean(0)
flat = aligned.reshape(len(frames), -1)
mean = flat.mean(0)
_, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
for k in (1, 2, 4, 8):
    recon = mean + (flat - mean) @ vt[:k].T @ vt[:k]
    print(f"PCA rank {k}", round(float(kabsch_rmsd(recon.reshape(frames.shape), frames).mean()), 3))
for kind in ("gnn", "mlp"):
    torch.manual_seed(0)
    dec = make_decoder(kind, x0, graph.edge_index, 8)
    lat = LatentTable(len(truth), 8, 0.1)
    adam = torch.optim.Adam(list(dec.parameters()) + list(lat.parameters()), lr=1e-3)
    t0 = time.time()
    for step in range(1, 3001):
        idx = torch.randint(0, len(truth), (8,))
        loss = ((dec(lat(idx)) - truth[idx]) ** 2).sum(-1).mean()
        adam.zero_grad()
        loss.backward()
        adam.step()
        if step % 500 == 0:
            with torch.no_grad():
                pred = dec(lat(torch.arange(len(truth))))
            print(kind, step, round(float(kabsch_rmsd(pred, truth).mean()), 3),
                  f"{time.time() - t0:.1f} s", flush=True)
