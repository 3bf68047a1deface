"""Banks in HDF5: one group per bank with chunked ``storage`` and ``age`` datasets; counters and the
step they belong to as attributes."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from ebmgraph.errors import DataError
from ebmgraph.store.atomic import atomic_path

_STORED_AS = {torch.bfloat16: torch.float32}


def save_banks(path: str | Path, banks: dict, step: int) -> None:
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
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


def load_banks(path: str | Path, banks: dict, step: int) -> None:
    """Restore ``banks`` from ``path``; the file must belong to checkpoint step ``step``."""
    path = Path(path)
    if not banks:
        return
    if not path.exists():
        raise DataError(f"bank file '{path}' not found; the run's checkpoint needs it to resume")
    with h5py.File(path, "r") as f:
        if int(f.attrs["step"]) != step:
            raise DataError(f"bank file '{path}' is from step {int(f.attrs['step'])} but the checkpoint is from "
                            f"step {step}; they were not saved together")
        for name, bank in banks.items():
            if name not in f:
                raise DataError(f"bank file '{path}' has no bank '{name}' (it has: {', '.join(f)})")
            group = f[name]
            state = {key: int(group.attrs[key]) for key in ("size", "seen", "pointer", "reinit_count")}
            if "storage" in group:
                dtype = getattr(torch, group.attrs["dtype"])
                state["storage"] = torch.from_numpy(np.asarray(group["storage"])).to(dtype)
                state["age"] = torch.from_numpy(np.asarray(group["age"]))
                bank.load_state_dict(state)
