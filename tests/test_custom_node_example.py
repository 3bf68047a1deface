"""examples/custom_nodes.py (a plugin) and examples/custom_node.yaml (a graph using it) run
through check, run and eval, and the plugin's kernel samples what it says."""

import json

import torch

from ebmgraph.cli import main
from ebmgraph.engine.load import load_graph
from ebmgraph.nodes.catalog import NODES
from ebmgraph.nodes.node import contract_problems
from tests.conftest import FAST

TINY = [arg for override in FAST[:5] + ("nodes.negatives.steps=3", "eval.n=32", "eval.steps=3")
        for arg in ("--set", override)]


def test_the_custom_node_example_checks_trains_and_evaluates(tmp_path, capsys):
    assert main(["check", "examples/custom_node.yaml"]) == 0
    assert "negatives (flip_symmetric_langevin)" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "examples/custom_node.yaml", "--out", str(out), *TINY]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "loss/logistic" in records[-1] and "logistic/gap" in records[-1]
    assert set(json.loads((out / "eval.json").read_text())["metrics"]) >= {"fd", "class_entropy"}
    for name in ("logistic_contrastive", "flip_symmetric_langevin"):
        assert contract_problems(NODES.get(name)) == []


def test_the_flip_symmetric_kernel_follows_the_symmetrized_energy():
    load_graph("examples/custom_node.yaml")  # imports the plugin
    kernel = NODES.get("flip_symmetric_langevin")

    def energy(x):
        return x[..., 0].flatten(1).sum(1)  # only the first column: not flip-symmetric

    x = torch.randn(3, 1, 8, 8)
    symmetric = kernel.sampled_energy(energy)
    assert torch.allclose(symmetric(x), (x[..., 0] + x[..., -1]).flatten(1).sum(1) / 2)
    assert torch.allclose(symmetric(x), symmetric(x.flip(-1)))
    assert not torch.allclose(energy(x), energy(x.flip(-1)))
