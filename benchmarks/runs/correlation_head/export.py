"""Copy a training checkpoint of the correlation head to the shipped weights (no optimiser).

Usage: ``python benchmarks/runs/correlation_head/export.py CKPT.pt
src/cryoframe/weights/correlation_head.pt [VOXEL_SIZE_A]`` (the voxel size of the training
store, for checkpoints that do not record it).
"""

import sys

import torch

from cryoframe.models.pretrained import save_weights

blob = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
keep = {k: blob[k] for k in ("format", "config", "state_dict", "step", "history", "meta")}
if keep["meta"].get("voxel_size_angstrom") is None:  # runs started before it was recorded
    keep["meta"]["voxel_size_angstrom"] = float(sys.argv[3])
save_weights(sys.argv[2], keep)
print("exported step", keep["step"])
