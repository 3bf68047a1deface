"""Composing trained energies: `ebmgraph sample --energy RUN_A --energy RUN_B:0.5` samples
E_A + 0.5 E_B with RUN_A's kernel."""

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DataError
from ebmgraph.eval.composition import WeightedEnergy
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.runs.run_dir import composed_energy, restore
from ebmgraph.runs.runner import Runner

TOY = ("train.steps=2", "train.progress=false", "nodes.negatives.steps=2", "eval.n=16", "eval.steps=2",
       "eval.metrics=[]")


def _train(tmp_path, name, *overrides, profile="toy2d"):
    run = tmp_path / name
    Runner(load_graph("graphs/short_run.yaml", profile, TOY + overrides), run).run()
    return run


def test_weighted_energy_is_the_weighted_sum():
    first, second = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    x = torch.randn(5, 2)
    composed = WeightedEnergy([first, second], [1.0, 0.5])
    assert torch.allclose(composed(x), first(x) + 0.5 * second(x))
    assert composed.describe(["a", "b"]) == "1 * a + 0.5 * b"


def test_sampling_a_composition_of_two_runs(tmp_path, capsys):
    gaussians = _train(tmp_path, "gaussians")
    rings = _train(tmp_path, "rings", "data.type=rings")
    assert main(["sample", "--energy", str(gaussians), "--energy", f"{rings}:0.5", "--n", "16", "--steps", "3"]) == 0
    (png,) = capsys.readouterr().out.split()
    assert png.endswith("composed_3steps.png") and (gaussians / "samples" / "composed_3steps.png").stat().st_size > 0

    program, _ = restore(gaussians)
    name, energy = composed_energy(program, gaussians, [(rings, 0.5)])
    assert name == f"1 * {gaussians}:energy + 0.5 * {rings}:energy"
    x = torch.randn(7, 2)
    own, other = Evaluation(program).energy, Evaluation(restore(rings)[0]).energy
    with torch.no_grad():
        assert torch.allclose(energy(x), own(x) + 0.5 * other(x))


def test_energies_on_different_samples_do_not_compose(tmp_path):
    toy = _train(tmp_path, "toy")
    digits = _train(tmp_path, "digits", "models.energy.channels=4", "data.batch_size=16", profile=None)
    program, _ = restore(toy)
    with pytest.raises(DataError, match=r"models samples of shape \(1, 8, 8\).*of shape \(2,\)"):
        composed_energy(program, toy, [(digits, 1.0)])


def test_the_compose_example_writes_the_composed_samples(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_example", "examples/compose.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (png,) = example.main([str(tmp_path), "--steps", "2", "--tiny"])
    assert png == tmp_path / "composed.png" and png.stat().st_size > 0
    assert (tmp_path / "rings" / "eval.json").exists() and (tmp_path / "eight_gaussians" / "eval.json").exists()
