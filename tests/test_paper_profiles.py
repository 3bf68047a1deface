"""Every graph's ``paper`` profile runs end to end, training and then its own evaluation section,
on fake CIFAR-10 batches with tiny step counts; what it needs from the user (CIFAR-10 batches,
Inception weights, torch-fidelity) is checked before the first step."""

import importlib.util
import json
from pathlib import Path

import pytest

from ebmgraph.cli import main
from ebmgraph.engine.load import load_graph
from ebmgraph.errors import GraphError
from ebmgraph.eval.requirements import check_evaluation
from ebmgraph.engine.check import check_graph
from ebmgraph.runs.runner import Runner
from ebmgraph.spec.schema import INCEPTION_METRICS

PAPER_GRAPHS = sorted(str(path) for path in Path("graphs").glob("*.yaml") if "\n  paper:" in path.read_text())
HAVE_FIDELITY = importlib.util.find_spec("torch_fidelity") is not None
#: What each metric adds to eval.json.
METRIC_KEYS = {"fid": "fid", "inception_score": "inception_score", "accuracy": "accuracy", "ood": "auroc_uniform_noise"}


def _tiny(graph: str, cifar: Path, weights: Path) -> list[str]:
    """--set overrides: CPU, batch 4, one training step (the paper networks are large for a CPU), 2
    steps for every chain, 4 evaluation samples in chunks of 2, small banks."""
    spec = load_graph(graph, "paper", (f"data.root={cifar}",))
    chains = [f"nodes.{name}.steps=2" for name, node in spec.nodes.items() if hasattr(node.config, "steps")]
    banks = [f"nodes.{name}.capacity=8" for name, node in spec.nodes.items() if hasattr(node.config, "capacity")]
    return [f"data.root={cifar}", "data.batch_size=4", "train.device=cpu", "train.steps=1", "train.log_every=1",
            "train.sample_every=1", "train.checkpoint_every=1", "train.progress=false", "eval.n=4",
            "eval.batch_size=2", "eval.steps=2", f"eval.inception_weights={weights}", *chains, *banks]


def test_every_graph_with_a_paper_profile_is_covered():
    assert {Path(g).stem for g in PAPER_GRAPHS} >= {"short_run", "igebm", "improved_cd", "dual_mcmc", "damc_lebm",
                                                    "jem"}


@pytest.mark.parametrize("graph", PAPER_GRAPHS)
def test_paper_profile_trains_and_evaluates_end_to_end(graph, tmp_path, write_cifar, capsys):
    write_cifar(tmp_path / "cifar")
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"")
    overrides = _tiny(graph, tmp_path / "cifar", weights)
    metrics = load_graph(graph, "paper", tuple(overrides)).eval.metrics
    assert metrics, f"{graph}: the paper profile names its evaluation metrics"
    if not HAVE_FIDELITY:  # the Inception metrics are refused up front, then the rest of the section runs
        assert main(["check", graph, "--profile", "paper", *[a for o in overrides for a in ("--set", o)]]) == 2
        assert "torch-fidelity" in capsys.readouterr().err
        metrics = [m for m in metrics if m not in INCEPTION_METRICS]
        overrides.append(f"eval.metrics=[{', '.join(metrics)}]")
    out = tmp_path / "runs"
    args = ["run", graph, "--profile", "paper", "--out", str(out), *[a for o in overrides for a in ("--set", o)]]
    assert main(args) == 0, capsys.readouterr().err
    record = json.loads((out / "eval.json").read_text())
    assert record["n"] == 4 and record["step"] == 1
    assert {METRIC_KEYS[m] for m in metrics} <= set(record["metrics"])


def test_digit_metrics_on_cifar_are_refused_before_training(tmp_path, write_cifar):
    """The damc_lebm paper profile once inherited fd and modes and crashed after training."""
    write_cifar(tmp_path / "cifar")
    spec = load_graph("graphs/damc_lebm.yaml", "paper", (f"data.root={tmp_path / 'cifar'}", "train.device=cpu",
                                                         "data.batch_size=4", "eval.metrics=[fd, modes]"))
    with pytest.raises(GraphError) as caught:
        check_evaluation(check_graph(spec))
    message = str(caught.value)
    assert message.startswith("--set eval.metrics=[fd, modes]: eval.metrics: ")
    assert "metric 'fd'" in message and "metric 'modes'" in message and "(3, 32, 32)" in message


def test_missing_inception_weights_stop_the_run_before_its_first_step(tmp_path, write_cifar):
    write_cifar(tmp_path / "cifar")
    missing = tmp_path / "no_such_weights.pth"
    spec = load_graph("graphs/improved_cd.yaml", "paper", (f"data.root={tmp_path / 'cifar'}", "train.device=cpu",
                                                           "data.batch_size=4", f"eval.inception_weights={missing}"))
    with pytest.raises(GraphError, match=f"Inception weights '{missing}' not found"):
        Runner(spec, tmp_path / "run")
    assert not (tmp_path / "run").exists()
