"""Small particles-knn probe: 1-NN structure / pose accuracy of one or more particle encoders,
single pass and averaged over 8 in-plane rotations, beside the invariant features, on 150 kept
particles per benchmark structure (1,757 in all; seed 0; otherwise as the particles-knn suite).

    git show dbfaf8c:src/cryoframe/weights/particle_vit_cpu.pt > /tmp/enc_660.pt
    python benchmarks/experiments/particles_knn_probe.py /tmp/enc_660.pt shipped

("shipped" is the encoder in cryoframe/weights.) One torch thread.
"""

from __future__ import annotations

import sys

import torch

from cryoframe.bench.particles_knn import _scores, invariant_features_2d, simulate_benchmark_set
from cryoframe.particles.embed import embed_images, load_encoder

torch.set_num_threads(1)
data = simulate_benchmark_set(150, 0, log=None)
print(f"{len(data['structure'])} particles")
s, p, _ = _scores(invariant_features_2d(data["images"]), data, 0, "euclidean", True)
print(f"invariant features: structure {s:.1f} %, pose {p:.1f} %")
for path in sys.argv[1:] or ["shipped"]:
    enc = load_encoder(None if path == "shipped" else path)
    for n_rot in (1, 8):
        f = embed_images(enc, data["images"], in_plane_rotations=n_rot).numpy()
        s, p, _ = _scores(f, data, 0, "cosine", True)
        print(f"{path}, {n_rot} rotation(s): structure {s:.1f} %, pose {p:.1f} %", flush=True)
