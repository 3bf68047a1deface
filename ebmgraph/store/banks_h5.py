"""Banks in HDF5: one group per bank holding its ``BankState``: the tensors as chunked datasets
(``storage``, ``age``), the counters and the storage dtype as attributes; the checkpoint step they
belong to as a file attribute."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ebmgraph.errors import DataError
from ebmgraph.nodes.bank_state import BankState
from ebmgraph.store.atomic import atomic_path

_STORED_AS = {torch.bfloat16: torch.float32}


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".previous" + path.suffix)


def save_banks(path: str | Path, banks: dict, step: int, checkpoint_step: int | None = None) -> None:
    """Write ``path`` atomically, keeping the banks of the checkpoint on disk (step
    ``checkpoint_step``; when None, the file replaced) as ``*.previous.h5``: if a crash comes before
    the matching checkpoint is renamed into place, the old checkpoint still finds its banks, even
    after a second crash at the same point (the orphan of the first is replaced, never kept)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        _write(temporary, banks, step)
        if path.exists() and checkpoint_step in (None, _step_of(path)):
            os.replace(path, previous_path(path))


def _write(path: Path, banks: dict, step: int) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["step"] = step
        for name, bank in banks.items():
            _write_state(f.create_group(name), bank.state_dict())


def _write_state(group: h5py.Group, state: BankState) -> None:
    """Tensors as chunked datasets (none before the bank's first read, no latents without a
    generator), counters and the storage dtype as attributes."""
    if state.storage is not None:
        group.attrs["dtype"] = state.dtype
        for field in BankState.tensor_fields():
            if getattr(state, field.name) is None:
                continue
            tensor = getattr(state, field.name).detach().cpu()
            array = tensor.to(_STORED_AS.get(tensor.dtype, tensor.dtype)).numpy()
            chunk = (min(len(array), 256), *array.shape[1:]) if len(array) else None
            group.create_dataset(field.name, data=array, chunks=chunk)
    for name, value in state.counters().items():
        group.attrs[name] = value


def _read_state(group: h5py.Group) -> BankState:
    state = BankState(**{f.name: torch.from_numpy(np.asarray(group[f.name]))
                         for f in BankState.tensor_fields() if f.name in group},
                      **{f.name: group.attrs[f.name] for f in BankState.counter_fields()})
    if state.storage is not None:
        state.storage = state.storage.to(getattr(torch, group.attrs["dtype"]))
    return state


def read_bank_states(path: str | Path) -> tuple[int, dict[str, BankState]]:
    """The checkpoint step of the bank file ``path`` and the state of each bank in it."""
    with h5py.File(path, "r") as f:
        return int(f.attrs["step"]), {name: _read_state(group) for name, group in f.items()}


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
    _, states = read_bank_states(path)
    for name, bank in banks.items():
        if name not in states:
            raise DataError(f"bank file '{path}' has no bank '{name}' (it has: {', '.join(states)})")
        state = states[name]
        if state.storage is not None:
            stored = (len(state.storage), state.dtype)
            expected = (bank.config.capacity, bank.config.dtype)
            if stored != expected:
                raise DataError(f"bank file '{path}': bank '{name}' holds {stored[0]} items of {stored[1]} but "
                                f"the graph asks for capacity {expected[0]} of {expected[1]}")
            bank.load_state_dict(state)
