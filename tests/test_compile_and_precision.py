"""Past the eager limit: ``compile: true`` on models and kernels (torch.compile), bf16 autocast
and channels-last weights. Each gives the eager step's losses (to rounding, or to bf16's
precision), keeps checkpoints' keys, and is written back by the graph dump."""

import pytest
import torch

from ebmgraph.engine.load import load_graph, loads_graph
from ebmgraph.engine.program import Program
from ebmgraph.errors import GraphError
from ebmgraph.nodes.mcmc.compiled import compiled_gradient
from ebmgraph.nodes.mcmc.proposal import energy_and_clipped_gradient
from ebmgraph.spec.dump import dumps

TOY = ("train.progress=false", "data.batch_size=32", "models.energy.hidden=16", "nodes.negatives.steps=4")
DIGITS = ("train.progress=false", "data.batch_size=8", "models.energy.channels=4", "nodes.negatives.steps=3")


def _losses(spec, steps: int) -> tuple[list[float], Program]:
    program = Program(spec)
    return [program.step(step)[0]["cd"].item() for step in range(steps)], program


def test_compiled_model_and_kernel_give_the_eager_losses():
    """Three short_run steps with the energy and the chain's step compiled (gradient clipped by
    norm, so the compiled clip is exercised) follow the eager run to float rounding."""
    clip = ("nodes.negatives.clip_grad_norm=0.5",)
    eager, eager_program = _losses(load_graph("graphs/short_run.yaml", "toy2d", TOY + clip), 3)
    spec = load_graph("graphs/short_run.yaml", "toy2d",
                      TOY + clip + ("models.energy.compile=true", "nodes.negatives.compile=true"))
    compiled, program = _losses(spec, 3)
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-6)
    assert program.models["energy"].state_dict().keys() == eager_program.models["energy"].state_dict().keys()
    assert loads_graph(dumps(spec), "dumped.yaml") == spec


def test_the_compiled_gradient_is_the_eager_one():
    energy = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))
    energy.requires_grad_(False)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) * 3
    got = compiled_gradient("default", 0.05, 0.06)(energy, x)
    expected = energy_and_clipped_gradient(energy, x, 0.05, 0.06)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    by_value = energy_and_clipped_gradient(energy, x, 0.05, None)[1]
    raw = energy_and_clipped_gradient(energy, x, None, None)[1]
    assert not torch.equal(by_value, raw) and not torch.equal(by_value, expected[1])  # both clips acted


def test_channels_last_weights_give_the_same_losses():
    eager, _ = _losses(load_graph("graphs/short_run.yaml", None, DIGITS), 2)
    channels_last, program = _losses(load_graph("graphs/short_run.yaml", None, DIGITS + ("train.channels_last=true",)), 2)
    assert channels_last == pytest.approx(eager, rel=1e-4, abs=1e-6)
    convolutions = [m.weight for m in program.models["energy"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)


def test_bf16_autocast_runs_the_step_in_bf16():
    """bf16 changes the losses by about its rounding (3 significant digits), not more."""
    fp32, _ = _losses(load_graph("graphs/short_run.yaml", None, DIGITS), 2)
    bf16, program = _losses(load_graph("graphs/short_run.yaml", None, DIGITS + ("train.precision=bf16",)), 2)
    assert bf16 != fp32
    assert bf16 == pytest.approx(fp32, abs=0.02 * max(abs(v) for v in fp32))
    assert all(p.dtype == torch.float32 for p in program.models["energy"].parameters())


def test_a_bad_compile_value_names_the_key():
    with pytest.raises(GraphError) as error:
        load_graph("graphs/short_run.yaml", None, ("models.energy.compile=often",))
    assert "models.energy.compile: expected true or false" in str(error.value)
    with pytest.raises(GraphError) as error:
        load_graph("graphs/short_run.yaml", None, ("train.precision=fp16",))
    assert "train.precision" in str(error.value) and "bf16" in str(error.value)
