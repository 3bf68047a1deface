"""The pure MCMC core (ebmgraph/nodes/mcmc): the Langevin proposal and its randomness, MALA's log
acceptance ratio and Metropolis step (with the clamp box), the chains' states, infos and
differentiable steps, the frozen parameters, and the latent energies; with power checks."""

import math

import pytest
import torch
from torch import nn

from ebmgraph.nodes.generators import GaussianGenerator
from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import ChainInfo, langevin_chain, mala_chain
from ebmgraph.nodes.mcmc.freezing import frozen_parameters
from ebmgraph.nodes.mcmc.metropolis import MalaState, inside_box, log_acceptance_ratio, metropolis_step
from ebmgraph.nodes.mcmc.proposal import clipped_energy_and_gradient, energy_and_gradient, langevin_proposal
from ebmgraph.nodes.posterior import latent_prior_energy, posterior_energy


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Bumpy(nn.Module):
    """A nonquadratic energy: quartic well with a cosine ripple and a cross term."""

    def forward(self, x):
        x = x.flatten(1)
        return (x.pow(4) / 4 - torch.cos(2 * x) + 0.3 * x.pow(2)).sum(1) + 0.5 * x[:, 0] * x[:, -1]


class ScaledQuadratic(nn.Module):
    """E(x) = theta ||x||^2 / 2 with a learnable theta."""

    def __init__(self, theta: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=torch.float64))

    def forward(self, x):
        return self.theta * x.flatten(1).pow(2).sum(1) / 2


# the proposal ------------------------------------------------------------------------------------

def test_proposal_is_the_drift_step_plus_one_gaussian_draw():
    x = torch.randn(8, 3, generator=_generator(1), dtype=torch.float64)
    grad = torch.randn(8, 3, generator=_generator(2), dtype=torch.float64)
    generator, replay = _generator(3), _generator(3)
    y = langevin_proposal(x, grad, 0.2, 0.5, generator)
    xi = torch.randn(x.shape, generator=replay, dtype=torch.float64)
    assert torch.equal(y, x - 0.2 * grad + 0.5 * xi)
    assert torch.equal(generator.get_state(), replay.get_state())  # exactly one draw
    assert torch.equal(langevin_proposal(x, grad, 0.2, 0.0, _generator(4)), x - 0.2 * grad)


def test_proposal_clamps_into_the_box():
    x = torch.zeros(512, 2)
    y = langevin_proposal(x, torch.zeros_like(x), 0.1, 3.0, _generator(5), clamp=(-0.5, 0.25))
    assert y.min() == -0.5 and y.max() == 0.25
    assert ((y > -0.5) & (y < 0.25)).any()


def test_clipped_gradient_follows_the_parameters():
    x = torch.randn(16, 3, generator=_generator(6), dtype=torch.float64) * 3
    value, grad = energy_and_gradient(Bumpy(), x)
    clipped_value, clipped = clipped_energy_and_gradient(Bumpy(), x, LangevinParameters(epsilon=0.1,
                                                                                        clip_grad_value=0.5))
    assert torch.equal(clipped_value, value) and torch.equal(clipped, grad.clamp(-0.5, 0.5))
    assert (grad.abs() > 0.5).any()


# MALA's log acceptance ratio ---------------------------------------------------------------------

def _states(seed: int, scale: float = 0.5):
    generator = _generator(seed)
    x = torch.randn(64, 3, generator=generator, dtype=torch.float64)
    y = x + scale * torch.randn(64, 3, generator=generator, dtype=torch.float64)
    return (x, y, *energy_and_gradient(Bumpy(), x), *energy_and_gradient(Bumpy(), y))


def test_log_acceptance_is_exactly_zero_for_a_proposal_at_the_current_state():
    x, _, energy_x, grad_x, _, _ = _states(7)
    y = langevin_proposal(x, grad_x, 0.0, 0.0, _generator(8))  # no drift, no noise: y = x
    assert torch.equal(y, x)
    ratio = log_acceptance_ratio(x, y, energy_x, energy_x, grad_x, grad_x, drift=0.3, noise=0.4, temperature=1.7)
    assert torch.equal(ratio, torch.zeros_like(ratio))


@pytest.mark.parametrize("drift, noise, temperature", [(0.07, 0.3, 1.5), (0.5, 1.0, 1.0), (1e-3, 2.0, 0.2)])
def test_log_acceptance_is_antisymmetric_and_the_metropolis_hastings_ratio(drift, noise, temperature):
    x, y, energy_x, grad_x, energy_y, grad_y = _states(9)
    forward = log_acceptance_ratio(x, y, energy_x, energy_y, grad_x, grad_y, drift, noise, temperature)
    backward = log_acceptance_ratio(y, x, energy_y, energy_x, grad_y, grad_x, drift, noise, temperature)
    torch.testing.assert_close(forward, -backward, rtol=1e-12, atol=1e-9 * (1 + forward.abs().max().item()))
    assert forward.abs().max() > 0.1
    q = torch.distributions.Normal
    log_q_xy = q(y - drift * grad_y, noise).log_prob(x).sum(1)
    log_q_yx = q(x - drift * grad_x, noise).log_prob(y).sum(1)
    expected = (-energy_y / temperature + log_q_xy) - (-energy_x / temperature + log_q_yx)
    torch.testing.assert_close(forward, expected, rtol=1e-9, atol=1e-9)


def test_antisymmetry_fails_without_the_reverse_proposal():
    """Power check: the forward-only ratio is not antisymmetric on the same states."""
    x, y, energy_x, grad_x, energy_y, grad_y = _states(9)

    def one_sided(x, y, energy_x, energy_y, grad_x):
        return energy_x - energy_y + ((y - x + 0.07 * grad_x) ** 2).sum(1) / (2 * 0.3**2)
    assert not torch.allclose(one_sided(x, y, energy_x, energy_y, grad_x), -one_sided(y, x, energy_y, energy_x, grad_y))


# the Metropolis step -----------------------------------------------------------------------------

def _mala_states(n: int, seed: int) -> tuple[MalaState, MalaState]:
    generator = _generator(seed)
    x = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.8
    y = x + torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return MalaState(x, *energy_and_gradient(Bumpy(), x)), MalaState(y, *energy_and_gradient(Bumpy(), y))


def test_metropolis_step_with_clamp_rejects_every_proposal_outside_the_box():
    current, proposal = _mala_states(256, 10)
    clamp = (-1.0, 1.0)
    inside = inside_box(proposal.position, clamp)
    assert inside.any() and (~inside).any()
    certain = torch.full((256,), 1e9, dtype=torch.float64)  # accepted whenever allowed
    state, accept = metropolis_step(current, proposal, certain, _generator(11), clamp)
    assert torch.equal(accept, inside)
    assert torch.equal(state.position[inside], proposal.position[inside])
    assert torch.equal(state.position[~inside], current.position[~inside])
    assert torch.equal(state.energy, torch.where(inside, proposal.energy, current.energy))
    assert torch.equal(state.gradient[~inside], current.gradient[~inside])
    assert state.position.min() >= -1.0 and state.position.max() <= 1.0
    # without the box the same proposals are all accepted
    assert metropolis_step(current, proposal, certain, _generator(11))[1].all()


def test_metropolis_step_draws_one_uniform_and_rejects_at_minus_infinity():
    current, proposal = _mala_states(32, 12)
    generator, replay = _generator(13), _generator(13)
    state, accept = metropolis_step(current, proposal, torch.full((32,), -math.inf, dtype=torch.float64), generator)
    assert not accept.any() and torch.equal(state.position, current.position)
    torch.rand(32, generator=replay)
    assert torch.equal(generator.get_state(), replay.get_state())


def _acceptance_matches(log_acceptance: torch.Tensor, claimed: torch.Tensor, seed: int) -> bool:
    """The fraction accepted is within 5 standard errors of the mean of ``claimed`` probabilities."""
    current, proposal = _mala_states(len(log_acceptance), seed)
    _, accept = metropolis_step(current, proposal, log_acceptance, _generator(seed + 1))
    standard_error = math.sqrt(float((claimed * (1 - claimed)).sum())) / len(claimed)
    return abs(accept.double().mean().item() - claimed.mean().item()) < 5 * standard_error


def test_metropolis_step_accepts_with_probability_min_one_exp_log_ratio():
    log_acceptance = torch.rand(20000, generator=_generator(14), dtype=torch.float64) * 4 - 3
    claimed = log_acceptance.exp().clamp(max=1.0)
    assert _acceptance_matches(log_acceptance, claimed, 15)
    # power check: a step that halves the acceptance probability fails the same comparison
    assert not _acceptance_matches(log_acceptance - math.log(2), claimed, 15)


# the chains --------------------------------------------------------------------------------------

def test_langevin_chain_is_the_proposal_repeated_with_one_draw_a_step():
    parameters = LangevinParameters(steps=5, step_size=0.05, noise=0.3, temperature=2.0, clip_grad_norm=1.0,
                                    clamp=(-2.0, 2.0))
    init = torch.randn(16, 3, generator=_generator(16), dtype=torch.float64)
    generator, replay = _generator(17), _generator(17)
    state, info = langevin_chain(Bumpy(), init, parameters, generator)
    x, energies = init, []
    for _ in range(5):
        value, grad = clipped_energy_and_gradient(Bumpy(), x, parameters)
        energies.append(value)
        x = langevin_proposal(x, grad, parameters.drift, 0.3, replay, (-2.0, 2.0))
    assert torch.equal(state.position, x) and state.differentiable_position is state.position
    assert torch.equal(generator.get_state(), replay.get_state())
    assert torch.equal(info.energy_start, energies[0]) and torch.equal(info.gradient, grad)
    assert torch.equal(info.energy_end, Bumpy()(x)) and info.acceptance is None


def test_chain_infos_without_steps_or_end_energy():
    init = torch.randn(4, 3, generator=_generator(18))
    parameters = LangevinParameters(steps=0, epsilon=0.1)
    for chain in (langevin_chain, mala_chain):
        state, info = chain(Bumpy(), init, parameters, _generator(19))
        assert torch.equal(state.position, init) and info == ChainInfo()
    _, info = langevin_chain(Bumpy(), init, LangevinParameters(steps=2, epsilon=0.1), _generator(19), end_energy=False)
    assert info.energy_end is None and info.energy_start is not None and info.gradient is not None


def _theta_gradient(differentiable: str, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """d/d theta of sum(x_K) through the differentiable steps, and the chain's states x_0..x_K."""
    energy = ScaledQuadratic(0.8)
    parameters = LangevinParameters(steps=steps, step_size=0.1, noise=0.2)
    init = torch.randn(32, 2, generator=_generator(20), dtype=torch.float64)
    state, _ = langevin_chain(energy, init, parameters, _generator(21), (energy,), differentiable=differentiable)
    (gradient,) = torch.autograd.grad(state.differentiable_position.sum(), energy.theta)
    path = [init] + [langevin_chain(energy, init, LangevinParameters(steps=k, step_size=0.1, noise=0.2),
                                    _generator(21))[0].position for k in range(1, steps + 1)]
    assert torch.equal(path[-1], state.position)
    return gradient, torch.stack(path)


def test_the_last_differentiable_step_has_the_one_step_gradient():
    """Improved CD eq. 7: x_K = x_{K-1} - a theta x_{K-1} + b xi, so d sum(x_K) / d theta = -a sum(x_{K-1})."""
    gradient, path = _theta_gradient("last")
    torch.testing.assert_close(gradient, -0.1 * path[-2].sum(), rtol=1e-12, atol=1e-12)


def test_all_differentiable_steps_have_the_unrolled_gradient():
    """Through every step: g_{k+1} = (1 - a theta) g_k - a x_k with g_0 = 0."""
    gradient, path = _theta_gradient("all")
    unrolled = torch.zeros_like(path[0])
    for x in path[:-1]:
        unrolled = (1 - 0.1 * 0.8) * unrolled - 0.1 * x
    torch.testing.assert_close(gradient, unrolled.sum(), rtol=1e-12, atol=1e-12)
    # power check: the last step's gradient alone is not the unrolled one
    last, _ = _theta_gradient("last")
    assert not torch.allclose(last, gradient)


def test_parameters_are_frozen_except_during_the_differentiable_steps():
    energy = ScaledQuadratic(0.8)
    seen = []
    energy.register_forward_hook(lambda module, args, output: seen.append(module.theta.requires_grad))
    parameters = LangevinParameters(steps=3, step_size=0.1, noise=0.2)
    state, _ = langevin_chain(energy, torch.ones(4, 2, dtype=torch.float64), parameters, _generator(22), (energy,),
                              differentiable="last")
    assert seen == [False, False, True, False]  # two frozen steps, the graph step, the end energy
    assert energy.theta.requires_grad and energy.theta.grad is None
    assert state.differentiable_position.requires_grad and not state.position.requires_grad


def test_mala_chain_draws_a_gaussian_then_a_uniform_each_step_and_uses_its_hooks():
    parameters = LangevinParameters(steps=3, step_size=0.05, noise=0.3)
    init = torch.randn(8, 3, generator=_generator(23), dtype=torch.float64)
    generator, replay = _generator(24), _generator(24)
    state, info = mala_chain(Bumpy(), init, parameters, generator)
    for _ in range(3):
        torch.randn(init.shape, generator=replay, dtype=torch.float64)
        torch.rand(8, generator=replay)
    assert torch.equal(generator.get_state(), replay.get_state())
    assert 0 < float(info.acceptance) <= 1 and not torch.equal(state.position, init)
    torch.testing.assert_close(state.energy, Bumpy()(state.position), rtol=0, atol=0)
    torch.testing.assert_close(info.energy_end, state.energy, rtol=0, atol=0)
    rejected, info = mala_chain(Bumpy(), init, parameters, _generator(24),
                                log_acceptance=lambda x, *_: torch.full((len(x),), -math.inf, dtype=x.dtype))
    assert torch.equal(rejected.position, init) and float(info.acceptance) == 0.0


def test_mala_chain_with_clamp_stays_in_the_box():
    init = torch.rand(128, 2, generator=_generator(25), dtype=torch.float64) * 1.6 - 0.8
    parameters = LangevinParameters(steps=20, step_size=0.5, noise=1.0, clamp=(-1.0, 1.0))
    state, info = mala_chain(Bumpy(), init, parameters, _generator(26))
    assert state.position.min() >= -1.0 and state.position.max() <= 1.0
    assert 0 < float(info.acceptance) < 1 and not torch.equal(state.position, init)


# frozen parameters and the latent energies --------------------------------------------------------

def test_frozen_parameters_restores_only_what_it_froze_even_on_error():
    module = nn.Linear(2, 2)
    module.bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), frozen_parameters(module):
        assert not module.weight.requires_grad
        raise RuntimeError("boom")
    assert module.weight.requires_grad and not module.bias.requires_grad


def test_latent_energies_are_the_negative_log_densities_up_to_constants():
    torch.manual_seed(0)
    generator = GaussianGenerator(latent_dim=2, sigma=0.7, body=nn.Linear(2, 3).double())
    prior = ScaledQuadratic(0.5)
    z = torch.randn(16, 2, generator=_generator(27), dtype=torch.float64)
    x = torch.randn(16, 3, generator=_generator(28), dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    half_squared = 0.5 * z.pow(2).sum(1)
    shift = posterior_energy(generator, x, mask, prior)(z) - (
        ((x - generator(z)) * mask).pow(2).sum(1) / (2 * 0.7**2) + half_squared + prior(z))
    torch.testing.assert_close(shift, shift[:1].expand(16), rtol=0, atol=1e-12)
    shift = latent_prior_energy(prior)(z) - prior(z) - half_squared
    torch.testing.assert_close(shift, torch.full_like(shift, math.log(2 * math.pi)), rtol=0, atol=1e-12)
