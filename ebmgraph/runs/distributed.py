"""Several processes on one graph through torch.distributed: ``ebmgraph run FILE --nproc N``
starts N workers with torch.distributed.run (torchrun), and a worker (torchrun puts RANK,
WORLD_SIZE and LOCAL_RANK in its environment; ``torchrun ... -m ebmgraph run FILE`` works the
same, on one machine or several) joins the process group: nccl on GPUs, gloo on the CPU."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import attrs
import torch
import torch.distributed as dist


@attrs.frozen
class World:
    """This process's place among the workers of a run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0: the process that writes the run's files, logs, draws the pictures and evaluates."""
        return self.rank == 0


def world_from_environment() -> World:
    """The world torchrun describes in the environment (one process when it says nothing)."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def launch(argv: list[str], nproc: int) -> int:
    """Run ``ebmgraph ARGV`` in ``nproc`` workers on this machine through torchrun; its exit code
    (torchrun stops every worker when one fails and names the failing rank)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "ebmgraph", *argv]
    return subprocess.run(command, check=False).returncode


def rank_device(device: str, world: World) -> str:
    """A CUDA run puts each local rank on its own GPU (cuda:LOCAL_RANK); other devices are shared."""
    return f"cuda:{world.local_rank}" if world.world_size > 1 and device == "cuda" else device


@contextlib.contextmanager
def process_group(world: World, device: str) -> Iterator[None]:
    """The default process group of a multi-process run, for as long as the run lasts."""
    if world.world_size == 1:
        yield
        return
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if cuda else "gloo", rank=world.rank, world_size=world.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def shared_choice(value, world: World):
    """Rank 0's ``value`` on every rank (e.g. the run directory a timestamp names)."""
    if world.world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.world_size > 1:
        dist.barrier()
