"""Golden test: the compiled improved_cd step's parameter gradient equals a hand transcription of
Algorithm 1 of Du et al. (2021), L_CD + L_KL (eq. 5-8) plus the E+^2 + E-^2 regularizer, on a
tiny multi-scale energy with fixed seeds. The chain's start x~0 and the reference set X are taken
from the step (the bank and the augmentation are tested on their own)."""

import copy

import pytest
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.engine.program import Program
from ebmgraph.engine.load import load_graph
from captured_gradients import captured_gradients, recorded_outputs

STEPS, STEP_SIZE, NOISE = 3, 40.0, 0.005
# Gradient-norm clipping is off: it rescales the update after the gradient, an optimizer detail.
TINY = ("data.batch_size=6", "models.energy.channels=4", "nodes.bank.history=5", f"nodes.negatives.steps={STEPS}",
        "optimizers.energy_optimizer.clip_grad_norm=null",
        "train.progress=false")
STEP = 2  # the bank holds 12 samples by then, so X is not empty


def _capture(program, names):
    """Record the outputs of nodes ``names`` and the gradient each optimizer would apply."""
    return recorded_outputs(program, names), captured_gradients(program)


def _algorithm_1(energy, x_plus, x0, reference, noise, all_steps):
    """Algorithm 1 written out: K Langevin steps with stop_grad between steps (all but the last, or
    none with ``all_steps``), x- = stop_grad(x~K), x^- = x~K, and the loss L_CD + L_KL + E^2."""
    frozen = copy.deepcopy(energy).requires_grad_(False)          # E_{stop_grad(theta)}
    x = x0
    for k in range(STEPS):
        differentiable = all_steps or k == STEPS - 1
        x_in = x if all_steps and k > 0 else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x_in).sum(), x_in, create_graph=differentiable)
        x = (x_in - STEP_SIZE * grad + NOISE * torch.randn(x.shape, generator=noise)).clamp(-1.0, 1.0)
        x = x if differentiable else x.detach()
    x_minus, x_hat = x.detach(), x
    e_plus, e_minus = energy(x_plus), energy(x_minus)
    l_cd = e_plus.mean() - e_minus.mean()
    nearest = torch.cdist(x_hat.flatten(1), reference.flatten(1)).min(dim=1).values
    l_kl = frozen(x_hat).mean() - nearest.log().mean()
    regularizer = (e_plus**2).mean() + (e_minus**2).mean()
    return torch.autograd.grad(l_cd + l_kl + regularizer, list(energy.parameters()))


def _compiled_and_transcribed(differentiable: str, all_steps: bool):
    """(the compiled step's gradient, Algorithm 1's) at step STEP of the graph with the kernel's
    ``differentiable`` setting; the transcription differentiates through all steps if ``all_steps``."""
    spec = load_graph("graphs/improved_cd.yaml", None, (*TINY, f"nodes.negatives.differentiable={differentiable}"))
    program = Program(spec)
    for step in range(STEP):
        program.step(step)
    before = copy.deepcopy(program.models["energy"])
    outputs, gradients = _capture(program, ["data", "bank", "augmented"])
    program.step(STEP)
    assert len(outputs["bank"]["history"]) == 5
    ctx = StepContext(spec.seed, STEP, torch.device("cpu"))
    expected = _algorithm_1(before, outputs["data"]["x"], outputs["augmented"]["x"], outputs["bank"]["history"],
                            ctx.generator("negatives"), all_steps=all_steps)
    return gradients["energy_optimizer"], expected


@pytest.mark.parametrize("differentiable", ["last", "all"])
def test_gradient_matches_algorithm_1(differentiable):
    got, expected = _compiled_and_transcribed(differentiable, all_steps=differentiable == "all")
    assert len(got) == len(expected)
    for index, (g, e) in enumerate(zip(got, expected)):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6, msg=f"parameter {index}")


def test_the_kl_term_changes_the_gradient():
    """Power check: without the graph through the last step the gradient differs from Algorithm 1
    (L_KL's gradient is not negligible, Figure 9), so the test above can tell them apart."""
    got, expected = _compiled_and_transcribed("none", all_steps=False)
    difference = sum((g - e).abs().sum() for g, e in zip(got, expected))
    scale = sum(e.abs().sum() for e in expected)
    assert difference > 1e-3 * scale
