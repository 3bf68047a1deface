"""Tests' access to a run's newest checkpoint: its state, and writing an edited state back as a
complete checkpoint (a new manifest, the same banks)."""

from ebmgraph.store.checkpoint import STATE, latest, read_state, state_bytes
from ebmgraph.store.rank_shards import BANKS
from ebmgraph.store.checkpoint_dir import write_checkpoint


def final_state(run_dir) -> dict:
    return read_state(latest(run_dir))


def replace_state(run_dir, state: dict) -> None:
    """Write ``state`` as the run's newest checkpoint, keeping that checkpoint's banks."""
    checkpoint = latest(run_dir)
    files = {STATE: lambda: state_bytes(state)}
    if checkpoint.file(BANKS).exists():
        banks = checkpoint.file(BANKS).read_bytes()
        files[BANKS] = lambda: banks
    write_checkpoint(run_dir, checkpoint.step, files)

