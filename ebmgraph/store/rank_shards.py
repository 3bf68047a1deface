"""Checkpoints of data-parallel runs (torch.distributed): rank 0 writes the one checkpoint
directory; every rank's bank shard (``banks.h5`` for rank 0, ``banks_rank{r}.h5`` for rank r)
and torch RNG state reach it through an object gather. With one process nothing is gathered."""

from __future__ import annotations

import torch
import torch.distributed as dist

BANKS = "banks.h5"


def banks_file(rank: int) -> str:
    """The name of rank ``rank``'s bank file in a checkpoint directory."""
    return BANKS if rank == 0 else f"banks_rank{rank}.h5"


def on_any_rank(flag: bool, world_size: int) -> bool:
    """Whether ``flag`` holds on any rank (every rank gets the same answer)."""
    if world_size == 1:
        return flag
    value = torch.tensor([float(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gathered(value, rank: int, world_size: int) -> list | None:
    """Every rank's ``value``, in rank order, on rank 0; None on the others."""
    if world_size == 1:
        return [value]
    values = [None] * world_size if rank == 0 else None
    dist.gather_object(value, values, dst=0)
    return values
