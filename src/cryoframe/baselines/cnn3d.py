"""A small supervised 3D CNN trained from scratch: the classification baseline without pretraining.

Three conv blocks (3×3×3 conv → batch norm → ReLU → 2× max pool), global average pooling and a
linear layer. Trained with AdamW and cross-entropy on the same split as the frozen-encoder heads,
with random 90° rotations about the box centre as augmentation (they map the voxel grid onto
itself and keep the missing wedge a wedge, though about a different axis); the epoch with the
best validation accuracy is kept.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from cryoframe._errors import InputError
from cryoframe.tasks.classify import fit_classifier

__all__ = ["SmallCNN3d", "train_cnn3d", "predict_cnn3d"]


class SmallCNN3d(nn.Module):
    """Three-block 3D CNN classifier.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    width : int
        Channels of the first block (doubled in each following block).
    """

    def __init__(self, n_classes: int, width: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(3):
            c_out = width * 2**i
            layers += [
                nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm3d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool3d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, n, n, n)` volumes → `(B, n_classes)` logits."""
        h = self.features(x[:, None])
        return self.head(h.mean(dim=(-3, -2, -1)))


def _standardise(vol: Tensor) -> Tensor:
    flat = vol.reshape(vol.shape[0], -1)
    sd = flat.std(1, keepdim=True).clamp_min(1e-8)
    return ((flat - flat.mean(1, keepdim=True)) / sd).reshape(vol.shape)


def _random_rot90(x: Tensor, gen: torch.Generator) -> Tensor:
    """Rotate each volume by a random multiple of 90° about a random axis (about index n // 2)."""
    out = x.clone()
    axes = [(-3, -2), (-3, -1), (-2, -1)]
    ks = torch.randint(0, 4, (x.shape[0],), generator=gen)
    planes = torch.randint(0, 3, (x.shape[0],), generator=gen)
    for i in range(x.shape[0]):
        k = int(ks[i])
        if k:
            plane = axes[int(planes[i])]
            # rot90 turns about (n - 1) / 2; the roll by 1 moves the centre back to n // 2
            r = torch.rot90(x[i], k, dims=plane)
            shift = [1 if (k in (1, 2) and d == plane[0]) or (k in (2, 3) and d == plane[1]) else 0
                     for d in plane]
            out[i] = torch.roll(r, shifts=shift, dims=plane) if x.shape[-1] % 2 == 0 else r
    return out


def train_cnn3d(train_x, train_y, val_x=None, val_y=None, *, n_classes: int | None = None,
                epochs: int = 10, batch_size: int = 32, lr: float = 2e-3, width: int = 8,
                seed: int = 0) -> SmallCNN3d:
    """Train :class:`SmallCNN3d` from scratch on `(B, n, n, n)` subtomograms.

    The arguments are those of :func:`cryoframe.tasks.classify.train_mlp_head` with volumes
    (each standardised to zero mean, unit variance) in place of embeddings, ``width`` the channel
    width, AdamW with a one-cycle schedule and random 90° rotations as augmentation (the loop is
    :func:`cryoframe.tasks.classify.fit_classifier`). Returns the model (eval mode) at the epoch
    with the best validation accuracy (the last epoch without a validation set).
    """
    x = _standardise(torch.as_tensor(np.asarray(train_x), dtype=torch.float32))
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    if x.ndim != 4 or x.shape[0] != y.shape[0]:
        raise InputError("training volumes and labels do not match", field="train_x",
                         expected="(B, n, n, n) volumes with B labels")
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN3d(n_classes, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, (len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    validate = None if val_x is None else (
        lambda m: float((predict_cnn3d(m, val_x).argmax(1) == np.asarray(val_y)).mean()))
    return fit_classifier(model, x, y, epochs=epochs, batch_size=batch_size, optimizer=opt,
                          scheduler=sched, generator=gen, transform=_random_rot90, min_batch=2,
                          validate=validate)


@torch.no_grad()
def predict_cnn3d(model: SmallCNN3d, volumes, batch_size: int = 128) -> np.ndarray:
    """`(B, n, n, n)` volumes → `(B, n_classes)` class probabilities (numpy)."""
    model.eval()
    x = _standardise(torch.as_tensor(np.asarray(volumes), dtype=torch.float32))
    out = [torch.softmax(model(c), dim=1) for c in torch.split(x, batch_size)]
    return torch.cat(out).numpy()
