"""Golden test: two compiled steps of graphs/hat_ebm.yaml against a hand transcription of Algorithm 1
of the conditional Hat EBM (Hill et al. 2022, appendix G) on tiny models. The transcription keeps
its own bank of N (Z_i, X_i) pairs, filled as Z_i ~ N(0, I), X_i = G(Z_i; phi_0) (lines 1-2); per
step it runs K residual Langevin steps Y <- Y - (eps^2 / 2) clip(grad_Y H(Y + G(Z))) / T + eps xi from
Y = 0 (eq. 6), takes the hat network's gradient of mean H(X+ + data noise) - mean H(G(Z) + Y_K)
(eq. 8) and the generator's of (1/B) sum_b 1/2 ||G(Z_ib) - X_ib||^2 on the slots read (eq. 11), and
overwrites exactly those slots with (Z_b, X^_b) (line 17). Data, its noise, Z and the slots read
come from the step (the slots are found by matching the latents read against the hand bank); the
bank fill and the Langevin noise are redrawn from the nodes' seeds."""

import copy

import pytest
import torch

from captured_gradients import captured_gradients, recorded_outputs
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program

STEPS, EPSILON, TEMPERATURE, CLIP, CAPACITY = 3, 0.001, 4.0e-6, 0.002, 20
TINY = ("data.batch_size=6", "models.energy.channels=4", "models.generator.channels=4",
        f"nodes.negatives.steps={STEPS}", f"nodes.negatives.clip_grad_norm={CLIP}",
        f"nodes.history.capacity={CAPACITY}", "train.progress=false")
RECORDED = ["data", "data_noise", "prior_z", "negatives", "history"]


def _clip(grad):
    """Each sample's gradient rescaled to norm at most CLIP."""
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad * (CLIP / norm).clamp(max=1.0).view(-1, 1, 1, 1)


def _residual_langevin(energy, base, noise):
    """Eq. 6 from Y = 0 with Z fixed; returns X^ = G(Z) + Y_K and whether any clip was active."""
    residual, clipped = torch.zeros_like(base), False
    for _ in range(STEPS):
        residual = residual.requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(residual + base).sum(), residual)
        clipped |= bool((grad.flatten(1).norm(dim=1) > CLIP).any())
        residual = (residual - EPSILON**2 / 2 * _clip(grad) / TEMPERATURE
                    + EPSILON * torch.randn(residual.shape, generator=noise)).detach()
    return base + residual, clipped


class HandBank:
    """Algorithm 1's bank of N (Z_i, X_i) pairs."""

    def __init__(self, generator, fill):
        self.z = torch.randn((CAPACITY, generator.latent_shape[0]), generator=fill)
        with torch.no_grad():
            self.x = generator(self.z)

    def slots_of(self, latents):
        """The slots holding ``latents`` (each must be stored exactly once)."""
        matches = (self.z[None, :, :] == latents[:, None, :]).all(-1)
        assert (matches.sum(1) == 1).all(), "a latent read is not one slot of the bank"
        return matches.float().argmax(1)

    def overwrite(self, slots, z, x):
        self.z[slots], self.x[slots] = z, x


def _algorithm_1(energy, generator, bank, outputs, noise):
    """One iteration: the hat network's and the generator's gradients, X^, and the slots read."""
    z = outputs["prior_z"]["z"]
    negatives, clipped = _residual_langevin(energy, generator(z).detach(), noise)
    positives = outputs["data"]["x"] + outputs["data_noise"]["x"]
    ebm = energy(positives).mean() - energy(negatives).mean()
    slots = bank.slots_of(outputs["history"]["z"])
    fit = 0.5 * ((generator(bank.z[slots]) - bank.x[slots]) ** 2).flatten(1).sum(1).mean()
    return (torch.autograd.grad(ebm, list(energy.parameters())),
            torch.autograd.grad(fit, list(generator.parameters())), negatives, slots, clipped)


def _compare(got, expected):
    assert len(got) == len(expected)
    for index, (g, e) in enumerate(zip(got, expected)):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6, msg=f"parameter {index}")


def _run(steps=2, shift_writes=0):
    """``steps`` steps compared with the transcription; ``shift_writes`` moves the engine bank's
    writes that many slots on (a deliberately broken bank, for the power check)."""
    spec = load_graph("graphs/hat_ebm.yaml", None, TINY)
    program = Program(spec)
    bank_node = program.nodes["history"]
    if shift_writes:
        positions = bank_node._positions
        bank_node._positions = lambda ctx, n: (positions(ctx, n) + shift_writes) % CAPACITY
    bank = HandBank(program.models["generator"], StepContext(spec.seed, 0, torch.device("cpu")).generator("history:fill"))
    for step in range(steps):
        energy, generator = copy.deepcopy(program.models["energy"]), copy.deepcopy(program.models["generator"])
        outputs = recorded_outputs(program, RECORDED)
        gradients = captured_gradients(program)
        program.step(step)
        ctx = StepContext(spec.seed, step, torch.device("cpu"))
        energy_grads, generator_grads, negatives, slots, clipped = _algorithm_1(
            energy, generator, bank, outputs, ctx.generator("negatives"))
        assert clipped, "the tiny setting must exercise the per-sample clip"
        assert len(set(slots.tolist())) == len(slots), "the slots read must be unique (line 12)"
        torch.testing.assert_close(outputs["negatives"]["x"], negatives, rtol=1e-6, atol=1e-6)
        _compare(gradients["energy_optimizer"], energy_grads)
        _compare(gradients["generator_optimizer"], generator_grads)
        bank.overwrite(slots, outputs["prior_z"]["z"], negatives)
        state = bank_node.state_dict()
        torch.testing.assert_close(state.latents, bank.z, rtol=0, atol=0)
        torch.testing.assert_close(state.storage, bank.x, rtol=1e-6, atol=1e-6)


def test_two_steps_match_algorithm_1():
    _run()


def test_an_off_by_one_bank_write_fails_the_comparison():
    """Power check: a bank writing each pair one slot past the slot it was read from is caught."""
    with pytest.raises(AssertionError):
        _run(shift_writes=1)


def test_the_generator_fits_the_bank_not_the_current_samples():
    """The generator's gradient from the bank's (historical) pairs differs from the one the current
    (Z_b, X^_b) would give, so wiring the fit to the wrong pairs would fail the comparison."""
    spec = load_graph("graphs/hat_ebm.yaml", None, TINY)
    program = Program(spec)
    program.step(0)
    generator = copy.deepcopy(program.models["generator"])
    outputs = recorded_outputs(program, RECORDED)
    gradients = captured_gradients(program)
    program.step(1)
    current = 0.5 * ((generator(outputs["prior_z"]["z"]) - outputs["negatives"]["x"]) ** 2).flatten(1).sum(1).mean()
    wrong = torch.autograd.grad(current, list(generator.parameters()))
    assert any(not torch.allclose(g, w, rtol=1e-3, atol=1e-6)
               for g, w in zip(gradients["generator_optimizer"], wrong))
