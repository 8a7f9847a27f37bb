"""Copy a training checkpoint of the correlation head to the shipped weights (no optimiser).

Usage: ``python benchmarks/runs/correlation_head/export.py CKPT.pt src/cryoframe/weights/correlation_head.pt``
"""

import sys

import torch

from cryoframe.models.pretrained import save_weights

blob = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
keep = {k: blob[k] for k in ("format", "config", "state_dict", "step", "history", "meta")}
save_weights(sys.argv[2], keep)
print("exported step", keep["step"])
