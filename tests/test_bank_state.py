"""The replay bank's state schema (BankState) and its HDF5 form."""

import h5py
import pytest
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.bank_state import BankState
from ebmgraph.nodes.banks import ReplayBank, ReplayBankConfig
from ebmgraph.store.banks_h5 import read_bank_states, banks_bytes

CPU = torch.device("cpu")


def _used_bank(steps: int = 4, **config) -> ReplayBank:
    bank = ReplayBank("bank", ReplayBankConfig(**{"capacity": 16, "reinit": 0.25, **config}), {}, CPU)
    for step in range(steps):
        ctx = StepContext(0, step, CPU)
        x = bank(ctx, like=torch.zeros(6, 3))["x"]
        bank.write(ctx, store=x * 0.5 + step)
    return bank


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_bank_state_round_trips_through_hdf5(tmp_path, dtype):
    bank, unread = _used_bank(write="fifo", dtype=dtype), ReplayBank("unread", ReplayBankConfig(), {}, CPU)
    path = tmp_path / "banks.h5"
    path.write_bytes(banks_bytes({"bank": bank, "unread": unread}, 4))
    step, states = read_bank_states(path)
    assert step == 4 and list(states) == ["bank", "unread"]
    state, original = states["bank"], bank.state_dict()
    assert state.dtype == original.dtype == dtype and state.storage.dtype == getattr(torch, dtype)
    assert torch.equal(state.storage, original.storage) and torch.equal(state.age, original.age)
    assert state.counters() == original.counters() and state.reinit_count > 0
    assert states["unread"] == BankState()
    with h5py.File(path, "r") as f:  # the file layout other tools read
        assert set(f["bank"]) == {"storage", "age"} and set(f["unread"]) == set()
        assert set(f["bank"].attrs) == {"size", "seen", "pointer", "reinit_count", "dtype"}
        assert f["bank"].attrs["size"] == bank.size and f["bank"].attrs["dtype"] == dtype


def test_stored_and_draw_read_the_filled_slots_as_float():
    bank = _used_bank(steps=1, write="fifo", dtype="float16")
    state = bank.state_dict()
    assert state.size == 6 < len(state.storage)
    assert torch.equal(state.stored(), bank.storage[:6].float()) and torch.equal(state.stored_age(), bank.age[:6])
    expected = bank.storage[torch.randperm(6, generator=torch.Generator().manual_seed(3))[:4]].float()
    assert torch.equal(state.draw(4, torch.Generator().manual_seed(3)), expected)
    assert state.draw(100, torch.Generator()).shape == (6, 3)
    with pytest.raises(ValueError, match="never been read"):
        BankState().draw(1, torch.Generator())


def test_load_state_dict_restores_what_state_dict_gave():
    bank = _used_bank(write="reservoir")
    copy = ReplayBank("bank", bank.config, {}, CPU)
    copy.load_state_dict(bank.state_dict().to(CPU))
    assert copy.state_dict().counters() == bank.state_dict().counters()
    assert torch.equal(copy.storage, bank.storage) and torch.equal(copy.age, bank.age)
    assert copy.reinit_count.dtype == torch.long and int(copy.reinit_count) == int(bank.reinit_count)
