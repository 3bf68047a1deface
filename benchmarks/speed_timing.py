"""Timing and memory for benchmarks/speed.py: medians of interleaved repeats, markdown cells,
peak memory of a function run in a fresh process."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(work: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each callable over ``repeats`` rounds that call every one of them in turn (so
    a slow spell of the machine hits all of them alike), in reverse order every other round (so
    none always runs first), after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for run in work.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in work}
    for round_number in range(repeats):
        order = list(work.items())
        for name, run in order[::-1] if round_number % 2 else order:
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def seconds_cell(values: list[float], scale: float = 1e3) -> str:
    """``median (min–max)`` in milliseconds."""
    return f"{statistics.median(values) * scale:.1f} ({min(values) * scale:.1f}–{max(values) * scale:.1f})"


def ratio_cell(values: list[float], reference: list[float]) -> str:
    """The median over rounds of the ratio of two timings taken in the same round, with the
    interquartile range of those ratios: ``1.012 (0.981–1.040)``."""
    ratios = sorted(v / r for v, r in zip(values, reference))
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _peak_in_process(make: Callable[[], Callable[[], object]], calls: int, device: str) -> float:
    """MiB of tensors that one of ``calls`` calls of ``make()``'s function holds at its peak beyond
    what was allocated before it (the CUDA allocator's peak on a GPU; on the CPU the running sum,
    in time order, of the bytes each profiled operator allocates less what it frees, and of the
    releases outside operators: tensors only, counted exactly)."""
    torch.set_num_threads(1)
    run = make()
    run()  # allocate what lives across steps (optimizer moments, banks) first
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(calls):
            run()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    peaks = []
    for _ in range(calls):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
            run()
        changes = sorted((event.time_range.start, event.self_cpu_memory_usage) for event in profile.events())
        peaks.append(max(itertools.accumulate(change for _, change in changes), default=0))
    return max(peaks) / 2**20


def peak_memory(make: Callable[[], Callable[[], object]], calls: int = 3, device: str = "cpu") -> float:
    """Peak MiB of ``make()``'s function beyond what lives between its calls, measured in a
    fresh spawned process (``make`` must be picklable: a module-level function or partial)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_peak_in_process, make, calls, device).result()
