"""Checkpoints: models, optimizers (EMA copies are models) and their learning-rate schedules, stateful
nodes other than banks (banks go to HDF5), global RNG states and the step."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ebmgraph.engine.updates import ScheduleStateError
from ebmgraph.errors import DataError, DivergenceError
from ebmgraph.store.atomic import atomic_path
from ebmgraph.store.banks_h5 import load_banks, save_banks

CHECKPOINT = "checkpoint.pt"
BANKS = "banks.h5"


def _tensors(value, path: str):
    """(path, tensor) of every tensor in nested dicts, lists, tuples and attrs states."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{path}[{index}]")
    elif hasattr(value, "__attrs_attrs__"):
        yield from _tensors({f.name: getattr(value, f.name) for f in value.__attrs_attrs__}, path)


def _first_non_finite(parts: dict) -> str | None:
    for path, tensor in (item for name, part in parts.items() for item in _tensors(part, name)):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return path
    return None


def save_checkpoint(run_dir: str | Path, program, step: int, on_disk: int | None = None) -> None:
    """Banks first, then the checkpoint; each written to a temporary file and renamed. Nothing is
    written when any parameter, optimizer state or bank holds a non-finite value (DivergenceError):
    the last checkpoint stays the last good one. ``on_disk`` is the step of the checkpoint now on
    disk (None: not known), whose banks are kept until the new checkpoint is in place."""
    run_dir = Path(run_dir)
    banks = program.banks()
    state = {
        "step": step,
        "models": {name: model.state_dict() for name, model in program.models.items()},
        "optimizers": program.updater.state_dict(),
        "lr_schedules": program.updater.schedules_state_dict(),
        "nodes": {name: node.state_dict() for name, node in program.stateful().items()},
        "torch_rng": torch.get_rng_state(),
    }
    bad = _first_non_finite({**{key: state[key] for key in ("models", "optimizers", "nodes")},
                             "banks": {name: bank.state_dict() for name, bank in banks.items()}})
    if bad is not None:
        raise DivergenceError(f"step {step}: not checkpointed: '{bad}' holds non-finite values")
    if banks:
        save_banks(run_dir / BANKS, banks, step, on_disk)
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
    try:  # checkpoints written before schedules existed hold none
        program.updater.load_schedules_state_dict(state.get("lr_schedules", {}))
    except ScheduleStateError as error:
        raise DataError(f"checkpoint '{Path(run_dir) / CHECKPOINT}': {error}") from None
    for name, node in program.stateful().items():
        node.load_state_dict(state["nodes"][name])
    torch.set_rng_state(state["torch_rng"])
    load_banks(Path(run_dir) / BANKS, program.banks(), state["step"])
    return state["step"]
