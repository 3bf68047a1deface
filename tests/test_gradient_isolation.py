"""Each optimizer gets the gradient of its own losses with respect to its own models only: a loss
that depends on two energies, bound to one optimizer, must not leak into the other's gradients."""

import copy

import pytest
import torch

from ebmgraph.engine.program import Program
from ebmgraph.nodes.losses import EvaluateEnergy
from ebmgraph.engine.load import loads_graph



GRAPH = """
name: isolation
seed: 5
data:
  type: eight_gaussians
  batch_size: 16
models:
  a: {type: mlp_energy, hidden: 16, layers: 2, activation: swish}
  b: {type: mlp_energy, hidden: 16, layers: 2, activation: swish}
nodes:
  noise: {type: uniform_noise, like: data, low: -4.0, high: 4.0}
  neg_a: {type: langevin, energy: a, init: noise, steps: 3, step_size: 0.05, noise: 0.1}
  neg_b: {type: langevin, energy: b, init: noise, steps: 3, step_size: 0.05, noise: 0.1}
  pos_a: {type: evaluate_energy, energy: a, x: data}
  pos_b: {type: evaluate_energy, energy: b, x: data}
  negative_a: {type: evaluate_energy, energy: a, x: neg_a}
  negative_b: {type: evaluate_energy, energy: b, x: neg_b}
losses:
  cd_a: {type: contrastive_divergence, positive: pos_a, negative: negative_a}
  cd_b: {type: contrastive_divergence, positive: pos_b, negative: negative_b}
  # weight 0.5: with weight 1 the E_b(data) terms of cd_b and cross would cancel exactly
  cross: {type: contrastive_divergence, positive: pos_a, negative: pos_b, weight: 0.5}
optimizers:
  opt_a: {type: sgd, models: [a], losses: [cd_a], lr: 0.1}
  opt_b: {type: adam, models: [b], losses: [cd_b, cross], lr: 0.01}
train:
  progress: false
"""


def _grads(loss: torch.Tensor, module: torch.nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(module.parameters()), retain_graph=True))


def _differs(left: list[torch.Tensor], right: list[torch.Tensor]) -> bool:
    return any(not torch.allclose(x, y, atol=1e-4) for x, y in zip(left, right))


@pytest.fixture
def stepped(monkeypatch):
    """One step of the graph: the program, the models before the step, the optimizers' gradients
    (captured when each optimizer steps) and the samples each evaluate_energy node scored."""
    program = Program(loads_graph(GRAPH, "isolation.yaml"), device="cpu")
    before = {name: copy.deepcopy(model) for name, model in program.models.items()}

    captured: dict[str, list[torch.Tensor]] = {}
    steps_seen: list[str] = []
    for name, optimizer in program.updater.optimizers.items():
        real_step = optimizer.step

        def step(*args, _name=name, _real=real_step, **kwargs):
            captured[_name] = [p.grad.detach().clone() for p in program.updater.parameters[_name]]
            steps_seen.append(_name)
            return _real(*args, **kwargs)

        optimizer.step = step

    inputs: dict[str, torch.Tensor] = {}
    original_call = EvaluateEnergy.__call__

    def record(self, ctx, x):
        inputs[self.name] = x.detach().clone()
        return original_call(self, ctx, x)

    monkeypatch.setattr(EvaluateEnergy, "__call__", record)
    losses, _, _ = program.step(0)
    assert sorted(steps_seen) == ["opt_a", "opt_b"]
    return program, before, captured, inputs, losses


def test_each_optimizer_gets_only_its_own_losses_gradient(stepped):
    program, before, captured, inputs, losses = stepped
    a, b = before["a"], before["b"]
    data = inputs["pos_a"]
    assert torch.equal(inputs["pos_b"], data)
    e_a_data, e_b_data = a(data).mean(), b(data).mean()
    cd_a = e_a_data - a(inputs["negative_a"]).mean()
    cd_b = e_b_data - b(inputs["negative_b"]).mean()
    cross = 0.5 * (e_a_data - e_b_data)
    # the graph computed the same losses from the same samples
    for name, value in (("cd_a", cd_a), ("cd_b", cd_b), ("cross", cross)):
        torch.testing.assert_close(losses[name].detach(), value.detach(), rtol=0, atol=1e-6, msg=name)

    expected_a = _grads(cd_a, a)
    expected_b = _grads(cd_b + cross, b)
    assert len(captured["opt_a"]) == len(expected_a) and len(captured["opt_b"]) == len(expected_b)
    for got, want in zip(captured["opt_a"], expected_a):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for got, want in zip(captured["opt_b"], expected_b):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

    # teeth: cross really depends on a's parameters, and really contributes to b's gradients
    assert _differs(captured["opt_a"], _grads(cd_a + cross, a))
    assert _differs(captured["opt_b"], _grads(cd_b, b))
    assert all(torch.isfinite(g).all() for g in captured["opt_a"] + captured["opt_b"])


def test_the_step_moves_each_model_by_its_own_optimizer(stepped):
    program, before, captured, inputs, _ = stepped
    # opt_a is plain SGD: a_new = a_old - lr * grad(cd_a)
    for new, old, grad in zip(program.models["a"].parameters(), before["a"].parameters(), captured["opt_a"]):
        torch.testing.assert_close(new.detach(), old.detach() - 0.1 * grad, rtol=0, atol=1e-6)
    # every parameter of b moved (Adam's first step moves by about lr wherever the gradient is nonzero)
    for new, old, grad in zip(program.models["b"].parameters(), before["b"].parameters(), captured["opt_b"]):
        moved = (new.detach() - old.detach()).abs()
        assert torch.allclose(moved[grad != 0], torch.full_like(moved[grad != 0], 0.01), rtol=1e-3)


def test_samples_are_reproduced_from_the_same_step_context(stepped):
    program, before, _, inputs, _ = stepped
    # regenerate the chains: same seed, step and node names give the same generators
    ctx = program.context(0)
    data = program.nodes["data"](ctx)["x"]
    noise = program.nodes["noise"](ctx, like=data)["x"]
    assert torch.equal(data, inputs["pos_a"])
    for kernel, energy in (("neg_a", "a"), ("neg_b", "b")):
        node = type(program.nodes[kernel])(kernel, program.nodes[kernel].config, {"energy": before[energy]},
                                           torch.device("cpu"))
        assert torch.equal(node(ctx, init=noise)["x"], inputs[f"negative_{energy}"]), kernel
