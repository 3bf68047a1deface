"""Banks in HDF5: one group per bank with chunked ``storage`` and ``age`` datasets; counters and the
step they belong to as attributes."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ebmgraph.errors import DataError
from ebmgraph.store.atomic import atomic_path

_STORED_AS = {torch.bfloat16: torch.float32}


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".previous" + path.suffix)


def save_banks(path: str | Path, banks: dict, step: int) -> None:
    """Write ``path`` atomically, keeping the file it replaces as ``*.previous.h5``: if a crash
    comes before the matching checkpoint is renamed into place, the old checkpoint still finds
    its banks."""
    path = Path(path)
    with atomic_path(path) as temporary:
        _write(temporary, banks, step)
        if path.exists():
            os.replace(path, previous_path(path))


def _write(path: Path, banks: dict, step: int) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["step"] = step
        for name, bank in banks.items():
            state = bank.state_dict()
            group = f.create_group(name)
            if state["storage"] is not None:
                storage = state["storage"].detach().cpu()
                group.attrs["dtype"] = str(storage.dtype).removeprefix("torch.")
                storage = storage.to(_STORED_AS.get(storage.dtype, storage.dtype)).numpy()
                chunk = (min(len(storage), 256), *storage.shape[1:]) if len(storage) else None
                group.create_dataset("storage", data=storage, chunks=chunk)
                group.create_dataset("age", data=state["age"].cpu().numpy())
            for key in ("size", "seen", "pointer"):
                group.attrs[key] = int(state[key])
            group.attrs["reinit_count"] = int(state["reinit_count"])


def _step_of(path: Path) -> int | None:
    if not path.exists():
        return None
    with h5py.File(path, "r") as f:
        return int(f.attrs["step"])


def load_banks(path: str | Path, banks: dict, step: int) -> None:
    """Restore ``banks`` from ``path`` (or its previous version) saved at checkpoint step ``step``."""
    path = Path(path)
    if not banks:
        return
    candidates = [p for p in (path, previous_path(path)) if _step_of(p) == step]
    if not candidates:
        found = ", ".join(f"'{p}' (step {_step_of(p)})" for p in (path, previous_path(path)) if p.exists())
        raise DataError(f"no bank file for checkpoint step {step}: found {found or 'none'}; "
                        f"the run's checkpoint needs '{path}' to resume")
    path = candidates[0]
    with h5py.File(path, "r") as f:
        for name, bank in banks.items():
            if name not in f:
                raise DataError(f"bank file '{path}' has no bank '{name}' (it has: {', '.join(f)})")
            group = f[name]
            state = {key: int(group.attrs[key]) for key in ("size", "seen", "pointer", "reinit_count")}
            if "storage" in group:
                stored = (len(group["storage"]), group.attrs["dtype"])
                expected = (bank.config.capacity, bank.config.dtype)
                if stored != expected:
                    raise DataError(f"bank file '{path}': bank '{name}' holds {stored[0]} items of {stored[1]} but "
                                    f"the graph asks for capacity {expected[0]} of {expected[1]}")
                dtype = getattr(torch, group.attrs["dtype"])
                state["storage"] = torch.from_numpy(np.asarray(group["storage"])).to(dtype)
                state["age"] = torch.from_numpy(np.asarray(group["age"]))
                bank.load_state_dict(state)
