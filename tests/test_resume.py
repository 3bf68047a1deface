"""A run stopped at step k and resumed to n ends bit-identical to an uninterrupted n-step run."""

import attrs
import pytest
import torch

from ebmgraph.runs.runner import Runner
from tests.checkpoint_files import final_state, replace_state

EMA = "models.energy_ema={type: ema, of: energy, decay: 0.9}"


@pytest.mark.parametrize("write", ["reservoir", "back", "fifo"])
def test_resume_is_bit_identical(tmp_path, fast_graph, write):
    overrides = (f"nodes.bank.write={write}", "nodes.bank.capacity=40", "nodes.bank.reinit=0.2", EMA)
    spec = fast_graph("igebm", *overrides, "train.steps=6")
    whole = Runner(spec, tmp_path / "whole")
    whole.run()

    first = Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=3)), tmp_path / "split")
    first.run()
    assert final_state(tmp_path / "split")["step"] == 3
    resumed = Runner(spec, tmp_path / "split")
    resumed.run()

    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
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
    state = final_state(tmp_path / "split")
    state["optimizers"]["energy_optimizer"]["state"] = {}
    replace_state(tmp_path / "split", state)
    Runner(spec, tmp_path / "split").run()
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
    assert any(not torch.equal(v, b["models"]["energy"][k]) for k, v in a["models"]["energy"].items())
