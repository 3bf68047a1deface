"""Checkpoints: models, optimizers (EMA copies are models), stateful nodes other than banks (banks go
to HDF5), global RNG states and the step."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ebmgraph.errors import DataError
from ebmgraph.store.atomic import atomic_path
from ebmgraph.store.banks_h5 import load_banks, save_banks

CHECKPOINT = "checkpoint.pt"
BANKS = "banks.h5"


def save_checkpoint(run_dir: str | Path, program, step: int) -> None:
    """Banks first, then the checkpoint; each written to a temporary file and renamed."""
    run_dir = Path(run_dir)
    banks = program.banks()
    if banks:
        save_banks(run_dir / BANKS, banks, step)
    state = {
        "step": step,
        "models": {name: model.state_dict() for name, model in program.models.items()},
        "optimizers": program.updater.state_dict(),
        "nodes": {name: node.state_dict() for name, node in program.stateful().items()},
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(run_dir / CHECKPOINT) as temporary:
        torch.save(state, temporary)


def load_models(run_dir: str | Path, models: dict[str, torch.nn.Module]) -> dict:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise DataError(f"checkpoint '{path}' not found")
    try:  # tensors and plain data only: a checkpoint can never run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise DataError(f"checkpoint '{path}' holds more than tensors and plain data, and is refused: "
                        f"{str(error).strip().splitlines()[0]}") from None
    except (EOFError, RuntimeError, OSError) as error:
        raise DataError(f"checkpoint '{path}' cannot be read ({type(error).__name__}: {error}); it may be damaged") \
            from None
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    return state


def load_checkpoint(run_dir: str | Path, program) -> int:
    """Restore a program's models, optimizers, stateful nodes, banks and RNG; return the number of
completed steps."""
    state = load_models(run_dir, program.models)
    program.updater.load_state_dict(state["optimizers"])
    for name, node in program.stateful().items():
        node.load_state_dict(state["nodes"][name])
    torch.set_rng_state(state["torch_rng"])
    load_banks(Path(run_dir) / BANKS, program.banks(), state["step"])
    return state["step"]
