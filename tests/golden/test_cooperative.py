"""Golden test: the compiled cooperative step's gradients equal a hand transcription of cooperative
learning by MCMC teaching (Xie et al. 2018) on tiny models: Langevin revision X~ of the proposals
X^ = g(Z) on the EBM, the EBM's gradient of mean E(X) - mean E(X~), and the generator's gradient
of mean ||X~ - g(Z)||² / (2 sigma²). Z and the data come from the step; the Langevin noise is
redrawn from the kernel's seed."""

import copy

import torch

from captured_gradients import captured_gradients, recorded_outputs
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program

STEPS, STEP_SIZE, NOISE, SIGMA = 3, 0.125, 0.001, 0.3
# Spectral normalization is off: its power iteration advances on every forward pass, so the order of
# the passes, not the update rule, would decide the last digits.
TINY = ("data.batch_size=6", "models.energy.channels=4", "models.energy.spectral_norm=false",
        "models.generator.channels=4",
        f"nodes.revised.steps={STEPS}", "train.progress=false")
STEP = 1


def _mcmc_teaching(energy, generator, x, z, noise):
    """X^ = g(Z); K steps of X <- X - a grad E(X) + b xi; the two losses' gradients."""
    revised = generator(z).detach()
    for _ in range(STEPS):
        revised = revised.requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(revised).sum(), revised)
        revised = (revised - STEP_SIZE * grad + NOISE * torch.randn(revised.shape, generator=noise)).detach()
    ebm = energy(x).mean() - energy(revised).mean()
    teaching = ((revised - generator(z)) ** 2).flatten(1).sum(1).mean() / (2 * SIGMA**2)
    return (torch.autograd.grad(ebm, list(energy.parameters())),
            torch.autograd.grad(teaching, list(generator.parameters())), revised)


def _step():
    spec = load_graph("graphs/cooperative.yaml", None, TINY)
    program = Program(spec)
    for step in range(STEP):
        program.step(step)
    energy, generator = copy.deepcopy(program.models["energy"]), copy.deepcopy(program.models["generator"])
    outputs = recorded_outputs(program, ["data", "prior_z", "revised"])
    gradients = captured_gradients(program)
    program.step(STEP)
    ctx = StepContext(spec.seed, STEP, torch.device("cpu"))
    expected = _mcmc_teaching(energy, generator, outputs["data"]["x"], outputs["prior_z"]["z"],
                              ctx.generator("revised"))
    return gradients, expected, outputs


def test_gradients_match_mcmc_teaching():
    gradients, (energy_grads, generator_grads, revised), outputs = _step()
    torch.testing.assert_close(outputs["revised"]["x"], revised, rtol=1e-6, atol=1e-6)
    for got, expected in ((gradients["energy_optimizer"], energy_grads),
                          (gradients["generator_optimizer"], generator_grads)):
        assert len(got) == len(expected)
        for index, (g, e) in enumerate(zip(got, expected)):
            torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6, msg=f"parameter {index}")


def test_the_generator_learns_from_the_revision():
    """Power check: the generator's gradient is not zero, so regressing onto the unrevised
    proposals X^ = g(Z) (a gradient of exactly zero) would fail the comparison above."""
    gradients, _, _ = _step()
    assert sum(g.abs().sum() for g in gradients["generator_optimizer"]) > 0
