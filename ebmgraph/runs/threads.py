"""Intra-op threads of a training process (``train.threads``, ``ebmgraph run --threads``).

PyTorch's CPU kernels start one OpenMP thread per core, and those threads spin while they wait:
two runs on a two-core machine, two threads each, slow each other down many times over. A run
uses ``train.threads`` threads (null: as many as the cores it may run on, divided by the runs
that are already busy, judged by the load average, and never more than the process already
has), and warns once when its threads exceed the cores the other work leaves free. The threads
are set for the run and restored after it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def busy_cores() -> int:
    """Cores other work keeps busy: the 1-minute load average, rounded (0 where unknown)."""
    try:
        return round(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0


def choose_threads(requested: int | None, cores: int, busy: int, current: int) -> int:
    """``requested``, or (None) the cores the other work leaves free, at least 1 and at most
    ``current`` (the threads the process has: torch's default, or fewer set by its caller)."""
    return requested if requested is not None else max(min(cores - busy, current), 1)


def oversubscription_warning(threads: int, cores: int, busy: int) -> str | None:
    """A one-line warning when ``threads`` exceed the cores left free (None when they fit)."""
    free = max(cores - busy, 0)
    if threads <= max(free, 1):
        return None
    return (f"{threads} threads on {cores} cores, about {busy} of them busy with other work (load average): "
            f"the threads will wait for each other; use --threads {max(free, 1)} (train.threads)")


@contextlib.contextmanager
def run_threads(requested: int | None) -> Iterator[tuple[int, str | None]]:
    """Torch's intra-op threads for the block, restored after it; yields (threads, warning or None)."""
    cores, busy, before = usable_cores(), busy_cores(), torch.get_num_threads()
    threads = choose_threads(requested, cores, busy, before)
    torch.set_num_threads(threads)
    try:
        yield threads, oversubscription_warning(threads, cores, busy)
    finally:
        torch.set_num_threads(before)

