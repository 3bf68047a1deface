"""The step plan and the node contract: an immutable plan that round-trips through plan.json,
stop-gradient edges detached by the engine, stateful nodes checkpointed, and registration that
refuses node types breaking the contract."""

import attrs
import pytest

from ebmgraph.engine.check import check_graph
from ebmgraph.engine.load import loads_graph
from ebmgraph.engine.plan_record import plan_from_record, plan_record
from ebmgraph.engine.program import Program
from ebmgraph.nodes.catalog import NODES
from ebmgraph.nodes.kernels import Langevin
from ebmgraph.nodes.losses import EvaluateEnergy
from ebmgraph.nodes.node import Bank, DataSource, LossNode, ModelCall, Node, Stateful, contract_problems
from ebmgraph.nodes.ports import LOSS, SAMPLE, Port
from ebmgraph.nodes.registry import Registry
from ebmgraph.store.checkpoint import load_checkpoint, save_checkpoint
from ebmgraph.viz.drawing import mermaid, describe_graph


def test_the_plan_is_immutable(fast_graph):
    plan = check_graph(fast_graph("igebm"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        plan.order = []
    with pytest.raises(TypeError):
        plan.values[("data", "x")] = None
    assert isinstance(plan.phases, tuple) and isinstance(plan.phases[0].nodes, tuple)


@pytest.mark.parametrize("name", ["igebm", "improved_cd", "dual_mcmc", "damc_lebm"])
def test_the_plan_round_trips_through_its_record(name):
    from ebmgraph.engine.load import load_graph

    spec = load_graph(f"graphs/{name}.yaml")
    plan = check_graph(spec)
    again = plan_from_record(spec, plan_record(plan))
    for field in ("order", "edges", "phases", "samples"):
        assert getattr(again, field) == getattr(plan, field), field
    assert dict(again.values) == dict(plan.values) and dict(again.parameter_counts) == dict(plan.parameter_counts)
    assert sorted(again.graph.edges) == sorted(plan.graph.edges)
    assert mermaid(describe_graph(again)) == mermaid(describe_graph(plan))


def test_a_repeated_phase_draws_its_samples_once(fast_graph):
    """DAMC's amortizer phase (M = 6): data, amortizer draws and posterior chains before the loop."""
    from ebmgraph.engine.load import load_graph

    plan = check_graph(load_graph("graphs/damc_lebm.yaml"))
    first = plan.phases[0]
    assert first.repeat == 6 and first.drawn_once == ("data", "initial", "posterior", "mask")
    assert first.nodes == ("amortizer_fit",) and first.watches == (("amortizer_fit", "loss"),)
    assert "posterior" not in plan.phases[1].nodes  # a later phase reuses the samples


def test_stop_gradient_edges_are_detached_by_the_engine(fast_graph, monkeypatch):
    """A kernel that forgets to detach still hands the energy a constant: the generated step detaches."""
    program = Program(fast_graph("short_run"))
    energy = program.models["energy"]
    leaky = Langevin.__call__

    def forgetful(self, ctx, init):
        out = leaky(self, ctx, init)
        tied = out["x"] + 0 * sum(p.sum() for p in energy.parameters())  # a graph to the parameters
        return {"x": tied, "x_differentiable": tied}

    received = {}
    evaluate = EvaluateEnergy.__call__

    def recording(self, ctx, x):
        received[self.name] = x.grad_fn
        return evaluate(self, ctx, x)

    monkeypatch.setattr(Langevin, "__call__", forgetful)
    monkeypatch.setattr(EvaluateEnergy, "__call__", recording)
    program.step(0)
    assert received["negative_energy"] is None
    assert 'negative_energy = N.negative_energy(ctx, x=negatives["x"].detach())' in program.source.text


class _Steps(ModelCall, Stateful):
    """Counts the steps it has seen (a stateful node that is not a bank)."""

    type_name = "step_counter_for_tests"
    inputs = (Port("x", SAMPLE),)
    outputs = (Port("x", SAMPLE),)

    def __init__(self, *args):
        super().__init__(*args)
        self.seen = 0

    def infer(self, inputs):
        return {"x": inputs["x"]}

    def __call__(self, ctx, x):
        self.seen += 1
        return {"x": x}

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_a_stateful_node_is_checkpointed_whatever_its_capability(tmp_path, monkeypatch, fast_graph):
    monkeypatch.setitem(NODES._types, _Steps.type_name, _Steps)
    text = open("graphs/short_run.yaml").read().replace(
        "nodes:\n", "nodes:\n  counter: {type: step_counter_for_tests, x: data}\n", 1)
    spec = loads_graph(text, "counter.yaml", None, ("train.progress=false", "nodes.negatives.steps=2"))
    program = Program(spec)
    for step in range(3):
        program.step(step)
    save_checkpoint(tmp_path, program, 3)
    restored = Program(spec)
    assert restored.nodes["counter"].seen == 0
    assert load_checkpoint(tmp_path, restored) == 3 and restored.nodes["counter"].seen == 3


class _NoCapability(Node):
    type_name = "no_capability"

    def infer(self, inputs):
        return {}

    def __call__(self, ctx):
        return {}


class _TwoCapabilities(ModelCall, DataSource):
    type_name = "two_capabilities"


class _LossWithoutLoss(LossNode):
    type_name = "loss_without_loss"
    outputs = (Port("x", SAMPLE),)


class _LossOutsideLosses(ModelCall):
    type_name = "loss_outside_losses"
    outputs = (Port("loss", LOSS),)


class _DelayOutsideBanks(ModelCall):
    type_name = "delay_outside_banks"
    inputs = (Port("store", SAMPLE, delay=True),)


@pytest.mark.parametrize("cls, problem", [
    (_NoCapability, "no capability base"),
    (_TwoCapabilities, "DataSource and ModelCall"),
    (_LossWithoutLoss, "LossNode without a Loss output"),
    (_LossOutsideLosses, "Loss output but is not a LossNode"),
    (_DelayOutsideBanks, "delay input but is not a Bank"),
    (int, "not a subclass of ebmgraph's Node"),
])
def test_registration_refuses_node_types_that_break_the_contract(cls, problem):
    registry = Registry("node", contract_problems)
    with pytest.raises(TypeError, match="cannot be registered") as error:
        registry.register(cls)
    assert problem in str(error.value)


def test_every_registered_node_type_honours_the_contract():
    assert {cls.type_name: contract_problems(cls) for cls in NODES} == {cls.type_name: [] for cls in NODES}
    assert all(issubclass(NODES.get("replay_bank"), base) for base in (Bank, Stateful))
