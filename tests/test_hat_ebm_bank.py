"""Hat EBM's historical bank of 10,000 (Z, X) pairs: a training process killed with SIGKILL in the
middle of writing the bank file resumes from its last complete checkpoint and ends bit-identical
to an uninterrupted run, latents included."""

import pathlib
import signal
import subprocess
import sys

import torch

from ebmgraph.engine.load import load_graph
from ebmgraph.runs.runner import Runner
from ebmgraph.store.banks_h5 import read_bank_states
from ebmgraph.store.checkpoint import latest
from ebmgraph.store.rank_shards import BANKS
from tests.checkpoint_files import final_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = ("train.steps=6", "train.checkpoint_every=2", "train.sample_every=100", "train.log_every=1",
             "train.progress=false", "data.batch_size=8", "models.energy.channels=4", "models.generator.channels=4",
             "nodes.negatives.steps=2", "nodes.history.capacity=10000", "eval.metrics=[]")

# The child trains and, on its second bank write (the checkpoint of step 4), writes half of the
# latents into the temporary bank file, flushes it and kills itself.
CHILD = """
import os, signal, sys
import torch
torch.set_num_threads(1)  # as the test process: the same arithmetic, bit for bit
import ebmgraph.store.banks_h5 as banks_h5
from ebmgraph.engine.load import load_graph
from ebmgraph.runs.runner import Runner

original, writes = banks_h5._write_state, []
def dying(group, state):
    writes.append(1)
    if len(writes) == 2:
        group.create_dataset("latents", data=state.latents[:5000].numpy())
        group.file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    original(group, state)
banks_h5._write_state = dying
Runner(load_graph("graphs/hat_ebm.yaml", None, tuple(sys.argv[2:])), sys.argv[1]).run()
"""


def test_sigkill_during_the_bank_write_resumes_bit_identically(tmp_path):
    killed = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "killed"), *OVERRIDES], cwd=ROOT,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert final_state(tmp_path / "killed")["step"] == 2
    step, states = read_bank_states(latest(tmp_path / "killed").file(BANKS))
    assert step == 2 and states["history"].latents.shape == (10000, 16)

    spec = load_graph("graphs/hat_ebm.yaml", None, OVERRIDES)
    resumed = Runner(spec, tmp_path / "killed")
    resumed.run()
    whole = Runner(spec, tmp_path / "whole")
    whole.run()

    a, b = (final_state(p) for p in (tmp_path / "whole", tmp_path / "killed"))
    assert a["step"] == b["step"] == 6
    for model in ("energy", "generator"):
        for key, value in a["models"][model].items():
            assert torch.equal(value, b["models"][model][key]), f"{model}.{key} differs after the resume"
    bank_a, bank_b = whole.program.nodes["history"].state_dict(), resumed.program.nodes["history"].state_dict()
    assert torch.equal(bank_a.storage, bank_b.storage) and torch.equal(bank_a.latents, bank_b.latents)
    assert torch.equal(bank_a.age, bank_b.age)
    assert (bank_a.age == 5).sum() == 8 and (bank_a.age >= 1).sum() <= 5 * 8  # the last step wrote its 8 slots
