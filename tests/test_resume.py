"""A run stopped at step k and resumed to n ends bit-identical to an uninterrupted n-step run."""

import attrs
import pytest
import torch

from ebmgraph.runs.runner import Runner
from ebmgraph.store.checkpoint import CHECKPOINT

EMA = "models.energy_ema={type: ema, of: energy, decay: 0.9}"


def _final_state(run_dir):
    return torch.load(run_dir / CHECKPOINT, weights_only=False)


@pytest.mark.parametrize("write", ["reservoir", "back", "fifo"])
def test_resume_is_bit_identical(tmp_path, fast_graph, write):
    overrides = (f"nodes.bank.write={write}", "nodes.bank.capacity=40", "nodes.bank.reinit=0.2", EMA)
    spec = fast_graph("igebm", *overrides, "train.steps=6")
    whole = Runner(spec, tmp_path / "whole")
    whole.run()

    first = Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=3)), tmp_path / "split")
    first.run()
    assert _final_state(tmp_path / "split")["step"] == 3
    resumed = Runner(spec, tmp_path / "split")
    resumed.run()

    a, b = _final_state(tmp_path / "whole"), _final_state(tmp_path / "split")
    assert a["step"] == b["step"] == 6
    for model in ("energy", "energy_ema"):
        for key, value in a["models"][model].items():
            assert torch.equal(value, b["models"][model][key]), f"{model}.{key} differs after resume"
    bank_a, bank_b = whole.program.nodes["bank"], resumed.program.nodes["bank"]
    assert torch.equal(bank_a.storage, bank_b.storage)
    assert torch.equal(bank_a.age, bank_b.age)
    assert (bank_a.size, bank_a.seen, bank_a.pointer) == (bank_b.size, bank_b.seen, bank_b.pointer)


def test_resume_changes_something_when_state_is_lost(tmp_path, fast_graph):
    """Power check: without the optimizer state the resumed run differs, so the test above has teeth."""
    spec = fast_graph("igebm", "train.steps=6")
    Runner(spec, tmp_path / "whole").run()
    Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=3)), tmp_path / "split").run()
    state = _final_state(tmp_path / "split")
    state["optimizers"]["energy_optimizer"]["state"] = {}
    torch.save(state, tmp_path / "split" / CHECKPOINT)
    Runner(spec, tmp_path / "split").run()
    a, b = _final_state(tmp_path / "whole"), _final_state(tmp_path / "split")
    assert any(not torch.equal(v, b["models"]["energy"][k]) for k, v in a["models"]["energy"].items())


def test_two_crashes_in_a_row_before_the_checkpoint_rename_keep_the_run_resumable(tmp_path, fast_graph, monkeypatch):
    """A crash after the banks of step 4 are written but before checkpoint.pt is renamed, twice in a
    row (the resumed run crashes at the same point): the run still resumes from step 2 and ends
    bit-identical to an uninterrupted run."""
    import ebmgraph.store.checkpoint as checkpoint_module
    from ebmgraph.runs.runner import Runner

    overrides = ("train.steps=4", "train.checkpoint_every=2")
    straight = tmp_path / "straight"
    Runner(fast_graph("igebm", *overrides), straight).run()

    crashed = tmp_path / "crashed"
    Runner(fast_graph("igebm", "train.steps=2", "train.checkpoint_every=2"), crashed).run()
    real_atomic = checkpoint_module.atomic_path

    class Crash(Exception):
        pass

    def crashing(path):
        if path.name == "checkpoint.pt":
            raise Crash  # banks.h5 of step 4 is in place, checkpoint.pt of step 4 never is
        return real_atomic(path)

    monkeypatch.setattr(checkpoint_module, "atomic_path", crashing)
    for _ in range(2):
        with pytest.raises(Crash):
            Runner(fast_graph("igebm", *overrides), crashed).run()
    monkeypatch.setattr(checkpoint_module, "atomic_path", real_atomic)
    Runner(fast_graph("igebm", *overrides), crashed).run()
    for name, value in torch.load(straight / "checkpoint.pt", weights_only=True)["models"]["energy"].items():
        assert torch.equal(value, torch.load(crashed / "checkpoint.pt", weights_only=True)["models"]["energy"][name])
