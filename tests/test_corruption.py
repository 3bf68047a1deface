"""Damaged checkpoint files are detected, named, and the previous complete checkpoint is used:
truncation, a flipped bit in a file's structure (its first bytes) or in its data (tensor bytes),
a deleted file, for each file of a checkpoint directory; a bank holding NaN under a valid
checksum; and a sweep of random single-bit flips, every one of which is detected."""

import logging
import random

import attrs
import numpy as np
import pytest
import torch

from ebmgraph.errors import DataError
from ebmgraph.runs.runner import Runner
from ebmgraph.store.banks_h5 import read_bank_states
from ebmgraph.store.checkpoint import STATE, latest, load_checkpoint
from ebmgraph.store.rank_shards import BANKS
from ebmgraph.store.checkpoint_dir import MANIFEST, DamagedCheckpoint, verify, write_checkpoint
from tests.checkpoint_files import final_state

FILES = (STATE, BANKS, MANIFEST)
FLIPS_PER_FILE = 200


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(offset_of):
    def damage(data: bytes) -> bytes:
        offset = offset_of(len(data))
        return data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1:]
    return damage


DAMAGES = {"truncated": _truncate, "structure flipped": _flip(lambda n: 3), "data flipped": _flip(lambda n: n * 3 // 5)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 4-step run with checkpoints at steps 2 and 4 (to damage), and an uninterrupted 6-step run."""
    from tests.conftest import FAST
    from ebmgraph.engine.load import load_graph

    spec = load_graph("graphs/igebm.yaml", None, FAST + ("train.steps=6", "train.checkpoint_every=2", "eval.n=8"))
    root = tmp_path_factory.mktemp("runs")
    Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=4)), root / "four").run()
    Runner(spec, root / "whole").run()
    return spec, root / "four", final_state(root / "whole")


def _copy(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("damage", [*DAMAGES, "deleted"])
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_file_is_named_and_the_previous_checkpoint_used(runs, tmp_path, caplog, name, damage):
    spec, four, whole = runs
    run = _copy(four, tmp_path / "run")
    file = latest(run).file(name)
    if damage == "deleted":
        file.unlink()
    else:
        file.write_bytes(DAMAGES[damage](file.read_bytes()))
    with caplog.at_level(logging.WARNING):
        Runner(spec, run).run()
    assert f"'{file}'" in caplog.text and "falling back to the checkpoint of step 2" in caplog.text, caplog.text
    resumed = final_state(run)
    assert resumed["step"] == 6
    for model, values in whole["models"].items():
        for key, value in values.items():
            assert torch.equal(value, resumed["models"][model][key]), f"{model}.{key} after {damage} {name}"


def test_a_bank_holding_nan_under_a_valid_checksum_is_refused(runs, tmp_path, caplog):
    """A bank file whose checksum is right but which holds NaN (crafted, or written by a foreign
    tool) is detected at load and the previous checkpoint is used."""
    import h5py

    spec, four, _ = runs
    run = _copy(four, tmp_path / "run")
    checkpoint = latest(run)
    path = checkpoint.file(BANKS)
    with h5py.File(path, "r+") as f:
        f["bank/storage"][0, 0, 0, 0] = np.nan
    write_checkpoint(run, checkpoint.step, {STATE: checkpoint.file(STATE).read_bytes, BANKS: path.read_bytes})
    from ebmgraph.engine.program import Program

    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(run, Program(spec)) == 2
    assert "holds non-finite values in 'bank.storage'" in caplog.text and str(latest(run).file(BANKS)) in caplog.text


def test_no_complete_checkpoint_is_an_error_listing_each_reason(runs, tmp_path):
    spec, four, _ = runs
    run = _copy(four, tmp_path / "run")
    for directory in sorted((run / "checkpoints").iterdir()):
        (directory / STATE).write_bytes(b"")
    from ebmgraph.engine.program import Program

    with pytest.raises(DataError) as error:
        load_checkpoint(run, Program(spec))
    text = str(error.value)
    assert "holds no complete checkpoint" in text
    assert text.count("state.pt' is damaged: 0 bytes, its manifest says") == 2, text


@pytest.mark.parametrize("name", FILES)
def test_every_random_bit_flip_is_detected(runs, tmp_path, name):
    """FLIPS_PER_FILE single-bit flips at seeded random offsets: verify refuses each, naming a file
    of the checkpoint (a flip in the manifest may name the file whose entry it changed)."""
    _, four, _ = runs
    run = _copy(four, tmp_path / "run")
    checkpoint = latest(run)
    file = checkpoint.file(name)
    original = file.read_bytes()
    rng = random.Random(name)
    detected = 0
    for _ in range(FLIPS_PER_FILE):
        offset, bit = rng.randrange(len(original)), 1 << rng.randrange(8)
        file.write_bytes(original[:offset] + bytes([original[offset] ^ bit]) + original[offset + 1:])
        with pytest.raises(DamagedCheckpoint) as error:
            verify(checkpoint.path)
        detected += str(checkpoint.path) in str(error.value)
    file.write_bytes(original)
    assert verify(checkpoint.path) == checkpoint  # the power check: the intact file verifies
    assert detected == FLIPS_PER_FILE


def test_a_damaged_bank_file_read_directly_is_named(tmp_path):
    path = tmp_path / "banks.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(DamagedCheckpoint, match=f"bank file '{path}' cannot be read"):
        read_bank_states(path)
