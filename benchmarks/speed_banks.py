"""Banks for benchmarks/speed.py: the time a step spends drawing from and writing to its bank,
and saving a CIFAR-sized bank to HDF5 with the store's layout and with other chunkings and
compressions."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from ebmgraph.engine.program import Program
from ebmgraph.nodes.bank_state import BankState
from ebmgraph.store.banks_h5 import banks_bytes
from speed_timing import synchronize


class TimedBank:
    """Stands in for a bank node in the step's namespace and adds up the seconds of its reads
    and writes."""

    def __init__(self, bank, device: torch.device):
        self.bank, self.device, self.seconds = bank, device, 0.0

    def _timed(self, function, *args, **kwargs):
        synchronize(self.device)
        start = time.perf_counter()
        out = function(*args, **kwargs)
        synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return out

    def __call__(self, ctx, **inputs):
        return self._timed(self.bank, ctx, **inputs)

    def write(self, ctx, **inputs):
        return self._timed(self.bank.write, ctx, **inputs)

    def __getattr__(self, attribute):
        return getattr(self.bank, attribute)


def bank_fraction(program: Program, steps: int, first_step: int = 0) -> tuple[float, float]:
    """(bank seconds per step, step seconds per step) over ``steps`` unlogged steps."""
    timed = {name: TimedBank(program.nodes[name], program.device) for name in program.plan.banks()}
    for name, proxy in timed.items():
        setattr(program._node_namespace, name, proxy)
    synchronize(program.device)
    start = time.perf_counter()
    for step in range(first_step, first_step + steps):
        program.step(step, diagnostics_wanted=False)
    synchronize(program.device)
    total = time.perf_counter() - start
    for name in timed:
        setattr(program._node_namespace, name, program.nodes[name])
    return sum(t.seconds for t in timed.values()) / steps, total / steps


class SavedBank:
    """What the checkpoint writer reads of a bank: its state."""

    def __init__(self, state: BankState):
        self.state = state

    def state_dict(self) -> BankState:
        return self.state


def cifar_bank(n: int = 10_000) -> SavedBank:
    """A full bank of ``n`` CIFAR-sized samples, uniform on [-1, 1] (incompressible: a worst case)."""
    storage = torch.rand((n, 3, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    return SavedBank(BankState(storage=storage, age=torch.zeros(n, dtype=torch.long), size=n, seen=n))


def hdf5_rows(bank: SavedBank, repeats: int = 3) -> list[tuple[str, float, float]]:
    """(layout, median seconds, MiB on disk) of saving ``bank``: the store's file, then the
    storage alone in other layouts."""
    storage = bank.state_dict().storage.numpy()
    layouts = {"contiguous": {}, "chunks of 256 rows": {"chunks": (256, *storage.shape[1:])},
               "chunks of 256, gzip 1": {"chunks": (256, *storage.shape[1:]), "compression": "gzip",
                                          "compression_opts": 1},
               "chunks of 256, shuffle + gzip 1": {"chunks": (256, *storage.shape[1:]), "compression": "gzip",
                                                    "compression_opts": 1, "shuffle": True},
               "chunks of 256, lzf": {"chunks": (256, *storage.shape[1:]), "compression": "lzf"}}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "banks.h5"

        def store_file():
            path.write_bytes(banks_bytes({"bank": bank}, 0))

        def layout_file(options):
            with h5py.File(path, "w") as f:
                f.create_dataset("storage", data=storage, **options)

        for name, write in [("ebmgraph checkpoint (chunks of 256 rows, in memory, then one write)", store_file),
                            *[(f"h5py, {n}", lambda o=o: layout_file(o)) for n, o in layouts.items()]]:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                write()
                times.append(time.perf_counter() - start)
            rows.append((name, float(np.median(times)), path.stat().st_size / 2**20))
    return rows
