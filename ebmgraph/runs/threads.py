"""Intra-op threads of a training process (``train.threads``, ``ebmgraph run --threads``).

PyTorch's CPU kernels start one OpenMP thread per core, and those threads spin while they wait:
two runs on a two-core machine, two threads each, slow each other down many times over (27x
measured, docs/performance.md). A run uses ``train.threads`` threads; null takes half the cores
the process may use (at least one, at most the threads it has), so that a second run fits beside
it: two default runs on two cores each cost 1.2x one run alone, where one thread instead of two
costs a run alone 14 %. A run warns once, at its start, when its threads exceed the cores that
other work leaves free by the load average (which lags by about a minute, so it only warns). The
threads are set for the run and restored after it."""

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


def choose_threads(requested: int | None, current: int, cores: int) -> int:
    """``requested``, or (None) half of ``cores``, at least 1 and at most ``current`` (the process's threads)."""
    return requested if requested is not None else min(current, max(cores // 2, 1))


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
    threads = choose_threads(requested, before, cores)
    torch.set_num_threads(threads)
    try:
        yield threads, oversubscription_warning(threads, cores, busy)
    finally:
        torch.set_num_threads(before)

