"""Private helpers: accept numpy or torch input, pick float dtypes."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(x: object, dtype: torch.dtype | None = None) -> Tensor:
    """Convert numpy/torch/Python input to a floating torch tensor.

    Floating tensors keep their dtype (unless ``dtype`` is given); numpy float64 stays float64;
    Python scalars, lists and integer arrays become float64 so that angles read from metadata
    keep full precision.
    """
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        arr = np.ascontiguousarray(x)
        if not arr.flags.writeable or arr.dtype.byteorder not in ("=", "|"):
            arr = np.array(arr, dtype=arr.dtype.newbyteorder("="))  # read-only / big-endian MRC
        t = torch.from_numpy(arr)
    else:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if dtype is not None:
        return t.to(dtype)
    if not t.is_floating_point() and not t.is_complex():
        t = t.to(torch.float64)
    return t
