"""Checkpoints: models, optimizers (EMA copies are models) and their learning-rate schedules, stateful
nodes other than banks, global RNG states and the step in ``state.pt``; banks in ``banks.h5``; both
in one checkpoint directory (store/checkpoint_dir.py), written whole or not at all."""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from ebmgraph.engine.context import statistics
from ebmgraph.engine.updates import ScheduleStateError
from ebmgraph.errors import DataError, DivergenceError
from ebmgraph.store.banks_h5 import banks_bytes, load_banks
from ebmgraph.store.checkpoint_dir import (KEEP, DamagedCheckpoint, StoredCheckpoint, checkpoint_of_step, checkpoints,
                                           write_checkpoint)
from ebmgraph.store.finite import first_non_finite
from ebmgraph.store.rank_shards import banks_file, gathered, on_any_rank

STATE = "state.pt"
log = logging.getLogger(__name__)
T = TypeVar("T")


def state_bytes(state: dict) -> bytes:
    """``state`` as the bytes of a ``state.pt`` file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(run_dir: str | Path, program, step: int, keep: int = KEEP) -> StoredCheckpoint | None:
    """Write the checkpoint of ``step``. Nothing is written when any parameter, optimizer state or
    bank (of any rank) holds a non-finite value (DivergenceError): the last checkpoint stays the
    last good one. In a data-parallel run every rank calls this; rank 0 writes the models and
    optimizers (the same on every rank), every rank's bank shard and RNG state, and returns the
    checkpoint (None on the other ranks)."""
    banks, rank, world_size = program.banks(), program.rank, program.world_size
    state = {
        "step": step,
        "models": {name: model.state_dict() for name, model in program.models.items()},
        "optimizers": program.updater.state_dict(),
        "lr_schedules": program.updater.schedules_state_dict(),
        "nodes": {name: node.state_dict() for name, node in program.stateful().items()},
        "world_size": world_size,
    }
    bad = first_non_finite({**{key: state[key] for key in ("models", "optimizers", "nodes")},
                            "banks": {name: bank.state_dict() for name, bank in banks.items()}})
    if on_any_rank(bad is not None, world_size):
        where = f"'{bad[0]}'" if bad is not None else "another rank's state"
        raise DivergenceError(f"step {step}: not checkpointed: {where} holds non-finite values"
                              + (f" (rank {rank})" if world_size > 1 and bad is not None else ""),
                              {bad[0]: statistics(bad[1])} if bad is not None else {})
    rng = gathered(torch.get_rng_state(), rank, world_size)
    shards = gathered(banks_bytes(banks, step) if banks else None, rank, world_size)
    if rank != 0:
        return None
    state["torch_rng"] = rng[0] if world_size == 1 else rng
    files = {STATE: lambda: state_bytes(state)}
    files.update({banks_file(r): (lambda shard=shard: shard) for r, shard in enumerate(shards) if shard is not None})
    return write_checkpoint(run_dir, step, files, keep)


def read_state(checkpoint: StoredCheckpoint) -> dict:
    """The tensors and plain data of ``state.pt``: a checkpoint can never run code."""
    path = checkpoint.file(STATE)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise DataError(f"checkpoint '{path}' holds more than tensors and plain data, and is refused: "
                        f"{str(error).strip().splitlines()[0]}") from None
    except (EOFError, RuntimeError, OSError) as error:
        raise DamagedCheckpoint(f"checkpoint '{path}' cannot be read ({type(error).__name__}: {error})") from None


def _first_usable(run_dir: str | Path, use: Callable[[StoredCheckpoint], T]) -> T:
    """``use`` of the newest checkpoint that is complete and whose contents load; each newer damaged
    one is named in a warning. DataError listing the reasons when there is none."""
    damaged = []
    for found in checkpoints(run_dir):
        try:
            if isinstance(found, DamagedCheckpoint):
                raise found
            result = use(found)
        except DamagedCheckpoint as error:
            damaged.append(error)
            continue
        for error in damaged:
            log.warning("%s; falling back to the checkpoint of step %d", error, found.step)
        return result
    reasons = "".join(f"\n  {error}" for error in damaged)
    raise DataError(f"run directory '{run_dir}' holds no complete checkpoint{reasons}")


def latest(run_dir: str | Path) -> StoredCheckpoint:
    """The newest complete checkpoint of the run."""
    return _first_usable(run_dir, lambda checkpoint: checkpoint)


def _restore(checkpoint: StoredCheckpoint, program) -> int:
    state = read_state(checkpoint)
    written_by = state.get("world_size", 1)
    if written_by != program.world_size:
        raise DataError(f"checkpoint '{checkpoint.path}' was written by {written_by} process(es) and this run has "
                        f"{program.world_size}: each process keeps its own bank shard and RNG stream, which do not "
                        f"re-shard; resume with --nproc {written_by}")
    for name, model in program.models.items():
        model.load_state_dict(state["models"][name])
    program.updater.load_state_dict(state["optimizers"])
    try:  # checkpoints written before schedules existed hold none
        program.updater.load_schedules_state_dict(state.get("lr_schedules", {}))
    except ScheduleStateError as error:
        raise DataError(f"checkpoint '{checkpoint.file(STATE)}': {error}") from None
    for name, node in program.stateful().items():
        node.load_state_dict(state["nodes"][name])
    torch.set_rng_state(state["torch_rng"] if written_by == 1 else state["torch_rng"][program.rank])
    if program.banks():
        load_banks(checkpoint.file(banks_file(program.rank)), program.banks(), state["step"])
    return state["step"]


def load_checkpoint(run_dir: str | Path, program, step: int | None = None) -> int:
    """Restore a program's models, optimizers, stateful nodes, banks and RNG from the newest usable
    checkpoint (a damaged one is named and the one before it used), or from the checkpoint of
    ``step``; return the number of completed steps."""
    if step is not None:
        return _restore(checkpoint_of_step(run_dir, step), program)
    return _first_usable(run_dir, lambda checkpoint: _restore(checkpoint, program))
