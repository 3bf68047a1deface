"""Banks in HDF5 (``banks.h5`` of a checkpoint directory): one group per bank holding its
``BankState``: the tensors as chunked datasets (``storage``, ``age``, ``latents``), the counters and
the storage dtype as attributes; the checkpoint step they belong to as a file attribute."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import torch

from ebmgraph.errors import DataError
from ebmgraph.nodes.bank_state import BankState
from ebmgraph.store.checkpoint_dir import DamagedCheckpoint
from ebmgraph.store.finite import first_non_finite

_STORED_AS = {torch.bfloat16: torch.float32}


def banks_bytes(banks: dict, step: int) -> bytes:
    """The bank file of checkpoint step ``step``: one group per bank."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["step"] = step
        for name, bank in banks.items():
            _write_state(f.create_group(name), bank.state_dict())
    return buffer.getvalue()


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
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["step"]), {name: _read_state(group) for name, group in f.items()}
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise DamagedCheckpoint(f"bank file '{path}' cannot be read ({type(error).__name__}: {error})") from None


def load_banks(path: str | Path, banks: dict, step: int) -> None:
    """Restore ``banks`` from the bank file ``path`` of checkpoint step ``step``; a file of another
    step, or one holding non-finite values, is DamagedCheckpoint."""
    stored_step, states = read_bank_states(path)
    if stored_step != step:
        raise DamagedCheckpoint(f"bank file '{path}' belongs to step {stored_step}, its checkpoint to step {step}")
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
            bad = first_non_finite({name: state})
            if bad is not None:
                raise DamagedCheckpoint(f"bank file '{path}' holds non-finite values in '{bad[0]}'")
            bank.load_state_dict(state)
