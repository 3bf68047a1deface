"""Data parallelism inside a step (torch.distributed, one process per rank): the graph's batch
is split over the ranks, each optimizer's gradients are averaged over them before it steps, and
every rank starts from rank 0's parameters. Launching the processes is runs/distributed.py."""

from __future__ import annotations

import attrs
import torch
import torch.distributed as dist

from ebmgraph.errors import DataError
from ebmgraph.spec.schema import GraphSpec


def rank_batch(batch_size: int, world_size: int) -> int:
    """The batch of one rank when the graph's ``batch_size`` is the global batch."""
    if batch_size % world_size:
        raise DataError(f"data.batch_size {batch_size} does not split evenly over {world_size} processes: the "
                        f"graph's batch is the global batch (use a multiple of {world_size})")
    return batch_size // world_size


def rank_spec(spec: GraphSpec, world_size: int) -> GraphSpec:
    """``spec`` as one of ``world_size`` ranks runs it: its data node draws its share of the batch."""
    if world_size == 1:
        return spec
    data = spec.data.config
    shared = attrs.evolve(data, batch_size=rank_batch(data.batch_size, world_size))
    return attrs.evolve(spec, data=attrs.evolve(spec.data, config=shared))


def average_gradients(gradients: tuple[torch.Tensor | None, ...], world_size: int) -> tuple[torch.Tensor | None, ...]:
    """The mean of every rank's ``gradients`` in one all-reduce (None, a parameter no loss reaches,
    stays None: every rank runs the same step, so it is None on all). Each rank's losses are means
    over its equal share of the batch, so this is the gradient of the global batch."""
    present = [g for g in gradients if g is not None]
    if not present:
        return gradients
    flat = torch.cat([g.reshape(-1) for g in present])
    dist.all_reduce(flat)
    flat /= world_size
    averaged = iter(part.view_as(g) for part, g in zip(flat.split([g.numel() for g in present]), present))
    return tuple(None if g is None else next(averaged) for g in gradients)


def broadcast_models(models: dict[str, torch.nn.Module]) -> None:
    """Every rank takes rank 0's parameters and buffers (they are built from the same seed; this
    makes it so whatever a plugin's model did at construction)."""
    with torch.no_grad():
        for model in models.values():
            for tensor in (*model.parameters(), *model.buffers()):
                dist.broadcast(tensor, src=0)
