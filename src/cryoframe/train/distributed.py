"""Data-parallel helpers for ``torchrun`` (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node 2 -m cryoframe.cli.main pretrain --config cfg.yaml`` starts one process
per rank with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` set; :func:`init_distributed` joins the group
(a no-op when started normally) and every rank reads its own slice of each epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed", "all_reduce_mean", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and whether a process group is active."""

    rank: int = 0
    world_size: int = 1
    active: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that writes checkpoints and logs)."""
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group described by the ``torchrun`` environment (else single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), active=True)


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group (if one was joined)."""
    if info.active and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (identity without a process group)."""
    if not info.active:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    """Synchronise ranks (no-op without a process group)."""
    if info.active:
        dist.barrier()
