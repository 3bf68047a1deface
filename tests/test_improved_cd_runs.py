"""graphs/improved_cd.yaml end to end: short runs of its profiles, the entropy term switching on
once the bank holds the reference set, Algorithm 2's augmentation rounds, and its wiring errors."""

import json
import math

import pytest
import torch

from ebmgraph.engine.check import check_graph
from ebmgraph.engine.program import Program
from ebmgraph.runs.runner import Runner
from ebmgraph.errors import GraphError
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.nodes.augment import Augment
from ebmgraph.engine.load import load_graph
from ebmgraph.store.run_files import EVAL_FILE, METRICS_FILE
from ebmgraph.viz.trajectory import run_trajectory


def test_default_profile_trains_and_evaluates_with_augmentation_rounds(tmp_path, fast_graph):
    spec = fast_graph("improved_cd", "nodes.bank.history=8", "eval.augment_every=2")
    Runner(spec, tmp_path).run()
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    # batch 16: the bank holds 8 samples after the first step, so the entropy term runs from step 2
    assert records[0]["loss/kl_entropy"] == 0.0 and "kl_entropy/entropy" not in records[0]
    assert all(math.isfinite(r["kl_entropy/entropy"]) and r["loss/kl_entropy"] != 0.0 for r in records[1:])
    assert all(math.isfinite(r["loss/kl_opt"]) for r in records)
    assert json.loads((tmp_path / EVAL_FILE).read_text())["metrics"]["fd"] > 0


def test_toy2d_profile_drops_the_augmentation_and_runs(tmp_path):
    spec = load_graph("graphs/improved_cd.yaml", "toy2d", ("train.steps=3", "train.progress=false", "eval.n=64",
                                                           "eval.steps=3", "nodes.negatives.steps=3"))
    assert "augmented" not in spec.nodes and spec.nodes["negatives"].inputs["init"] == "bank"
    Runner(spec, tmp_path).run()
    assert math.isfinite(json.loads((tmp_path / EVAL_FILE).read_text())["metrics"]["kl_data_model"])


@pytest.mark.parametrize("steps, every, rounds", [(5, 2, 3), (4, 2, 2), (4, 20, 1), (0, 2, 0)])
def test_evaluation_chains_augment_before_every_round(fast_graph, monkeypatch, steps, every, rounds):
    program = Program(fast_graph("improved_cd", f"eval.augment_every={every}"))
    calls = []
    original = Augment.augment

    def counting(self, x, generator):
        calls.append(len(x))
        return original(self, x, generator)
    monkeypatch.setattr(Augment, "augment", counting)
    init = torch.rand((6, 1, 8, 8)) * 2 - 1
    x = Evaluation(program).chains(init, steps)
    assert calls == [6] * rounds and x.shape == init.shape
    assert torch.equal(x, init) if steps == 0 else not torch.equal(x, init)


def test_an_entropy_term_without_a_reference_set_is_a_wiring_error():
    with pytest.raises(GraphError) as error:
        check_graph(load_graph("graphs/improved_cd.yaml", None, ("nodes.bank.history=0",)))
    assert "kl_entropy" in str(error.value) and "give the bank a 'history' size" in str(error.value)


def test_paper_profile_steps_on_cifar_shaped_data(tmp_path, write_cifar):
    """The Table 5 multi-scale network with self-attention and group norm trains a step on 32x32
    color images, with the CIFAR-10 augmentations."""
    write_cifar(tmp_path / "cifar")
    spec = load_graph("graphs/improved_cd.yaml", "paper", (
        f"data.root={tmp_path / 'cifar'}", "data.batch_size=4", "train.device=cpu", "nodes.negatives.steps=2",
        "nodes.bank.history=4", "train.progress=false"))
    program = Program(spec)
    for step in range(3):
        losses, samples, _ = program.step(step)
    assert samples.shape == (4, 3, 32, 32) and all(torch.isfinite(v) for v in losses.values())
    assert losses["kl_entropy"] != 0.0


def test_trajectories_show_the_augmentation_transitions(fast_graph, monkeypatch):
    program = Program(fast_graph("improved_cd", "eval.augment_every=2"))
    calls = []
    original = Augment.augment
    monkeypatch.setattr(Augment, "augment", lambda self, x, generator: calls.append(len(x)) or original(self, x, generator))
    trajectory = run_trajectory(Evaluation(program), steps=6, n=4, snapshots=4)
    assert calls == [4, 4, 4] and trajectory.states.shape[0] == 5
