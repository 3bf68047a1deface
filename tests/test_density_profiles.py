"""The shipped toy2d profiles estimate the density (slow: each trains 2000 steps, about a minute):
``ebmgraph run --profile toy2d`` then the run's evaluation reaches KL(data || exp(-E)) <= 0.10 on
eight gaussians; short_run, whose energy is not its density (docs/algorithms/short_run.md), is
judged by its samples' histogram KL against that estimator's floor."""

import json

import pytest

from ebmgraph.cli import main
from ebmgraph.store.run_files import EVAL_FILE


def _evaluation(tmp_path, graph: str) -> dict:
    run_dir = tmp_path / graph
    assert main(["run", f"graphs/{graph}.yaml", "--profile", "toy2d", "--set", "train.progress=false",
                 "--out", str(run_dir)]) == 0
    return json.loads((run_dir / EVAL_FILE).read_text())["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("graph", ["igebm", "improved_cd", "cooperative"])
def test_toy2d_profile_learns_the_density(tmp_path, graph):
    assert _evaluation(tmp_path, graph)["kl_data_model"] <= 0.10


@pytest.mark.slow
def test_short_run_toy2d_profile_samples_the_data(tmp_path):
    metrics = _evaluation(tmp_path, "short_run")
    assert metrics["kl_data_samples"] <= 0.30 and metrics["kl_data_samples_floor"] < metrics["kl_data_samples"]
