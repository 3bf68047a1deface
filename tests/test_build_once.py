"""One Program, and one `ebmgraph run`, build each model and node exactly once and read the data
once; `ebmgraph check` builds on the meta device, also once."""

from collections import Counter

import pytest

from ebmgraph.cli import main
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.data import Cifar10, Digits
from ebmgraph.nodes.node import Node
from ebmgraph.nodes.registry import DerivedModelType
from tests.conftest import FAST


@pytest.fixture
def constructions(monkeypatch):
    """Counters of node constructions (by node name), model builds (by model type) and data reads."""
    counts = {"nodes": Counter(), "models": Counter(), "reads": Counter()}
    node_init = Node.__init__

    def counting_init(self, name, *args, **kwargs):
        counts["nodes"][name] += 1
        node_init(self, name, *args, **kwargs)

    monkeypatch.setattr(Node, "__init__", counting_init)
    for cls in MODELS:
        method = "build_from" if issubclass(cls, DerivedModelType) else "build"
        original = getattr(cls, method).__func__

        def counting_build(model_cls, *args, _original=original, **kwargs):
            counts["models"][model_cls.type_name] += 1
            return _original(model_cls, *args, **kwargs)

        monkeypatch.setattr(cls, method, classmethod(counting_build))
    for cls, method in ((Digits, "load"), (Cifar10, "_read_batch")):
        original = getattr(cls, method)

        def counting_read(self, *args, _original=original, _key=f"{cls.__name__}.{method}", **kwargs):
            counts["reads"][_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counting_read)
    return counts


def expected_models(spec) -> Counter:
    return Counter(model.type for model in spec.models.values())


def test_a_program_builds_everything_once(fast_graph, constructions):
    spec = fast_graph("improved_cd")
    program = Program(spec)
    assert constructions["nodes"] == Counter({name: 1 for name in program.plan.order})
    assert constructions["models"] == expected_models(spec)
    assert constructions["reads"] == Counter({"Digits.load": 1})


def test_a_paper_profile_reads_its_cifar_batches_once(tmp_path, write_cifar, constructions):
    write_cifar(tmp_path / "cifar")
    spec = load_graph("graphs/improved_cd.yaml", "paper",
                      ("train.device=cpu", f"data.root={tmp_path / 'cifar'}", "data.batch_size=4",
                       "nodes.bank.history=4", "nodes.negatives.steps=1"))
    program = Program(spec)
    assert constructions["reads"] == Counter({"Cifar10._read_batch": 6})  # five training batches and the test batch
    assert constructions["nodes"] == Counter({name: 1 for name in program.plan.order})
    assert constructions["models"] == expected_models(spec)


def test_checking_builds_everything_once_on_the_meta_device(constructions):
    spec = load_graph("graphs/dual_mcmc.yaml")
    plan = check_graph(spec)
    assert constructions["nodes"] == Counter({name: 1 for name in plan.order})
    assert constructions["models"] == expected_models(spec)
    assert constructions["reads"] == Counter({"Digits.load": 1})


def test_a_whole_run_builds_everything_once(tmp_path, constructions):
    """Training, checkpoints and the final evaluation (fd, modes, ood on digits) share the one build."""
    out = tmp_path / "run"
    args = [arg for override in FAST for arg in ("--set", override)]
    assert main(["run", "graphs/igebm.yaml", "--out", str(out), *args]) == 0
    spec = load_graph(out / "graph.yaml")
    assert constructions["nodes"] == Counter({name: 1 for name in spec.all_nodes()})
    assert constructions["models"] == expected_models(spec)
    assert constructions["reads"] == Counter({"Digits.load": 1})


def test_the_counters_see_a_second_build(fast_graph, constructions):
    """Power check: building twice is counted twice."""
    spec = fast_graph("short_run")
    Program(spec)
    Program(spec)
    assert set(constructions["nodes"].values()) == {2}
    assert constructions["models"] == Counter({"conv_energy": 2})
    assert constructions["reads"] == Counter({"Digits.load": 2})
