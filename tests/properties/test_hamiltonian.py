"""HMC and underdamped Langevin (ebmgraph/nodes/mcmc/hamiltonian.py and their kernel nodes): the
leapfrog's reversibility and energy error, the randomness drawn, target preservation on random
gaussians and a mixture with power checks (no Metropolis test, or the unadjusted chain at a
large step, leave the target), the configs' problems and the nodes' diagnostics."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from monte_carlo import ALPHA, STANDARD_NORMAL, examples, ks_critical, ks_statistic, stays_gaussian
from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.kernels import Hmc, UnderdampedLangevin
from ebmgraph.nodes.mcmc.hamiltonian import (
    HmcParameters, UnderdampedParameters, hmc_chain, leapfrog, underdamped_chain)
from ebmgraph.nodes.mcmc.metropolis import MalaState
from ebmgraph.nodes.mcmc.proposal import energy_and_gradient

CPU = torch.device("cpu")
CHAINS = 4000
EXAMPLES = examples(10)  # per kernel; each example runs 2 KS tests (Bonferroni below)


class Bumpy(nn.Module):
    def forward(self, x):
        x = x.flatten(1)
        return (x.pow(4) / 4 - torch.cos(2 * x) + 0.3 * x.pow(2)).sum(1) + 0.5 * x[:, 0] * x[:, -1]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _state(x: torch.Tensor, energy=Bumpy()) -> MalaState:
    return MalaState(x, *energy_and_gradient(energy, x))


def test_leapfrog_is_reversible_and_its_energy_error_is_second_order():
    x = torch.randn(64, 3, generator=_generator(0), dtype=torch.float64)
    p = torch.randn(64, 3, generator=_generator(1), dtype=torch.float64)
    end, q = leapfrog(_state(x), p, Bumpy(), energy_and_gradient, 0.05, 1.3, 10)
    back, p_back = leapfrog(end, -q, Bumpy(), energy_and_gradient, 0.05, 1.3, 10)
    torch.testing.assert_close(back.position, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(-p_back, p, rtol=0, atol=1e-10)

    def error(h):  # |dH| after a fixed time 0.5
        end, q = leapfrog(_state(x), p, Bumpy(), energy_and_gradient, h, 1.0, round(0.5 / h))
        start = Bumpy()(x) + 0.5 * p.pow(2).sum(1)
        return (end.energy + 0.5 * q.pow(2).sum(1) - start).abs().max().item()
    assert 3.0 < error(0.04) / error(0.02) < 5.0  # halving h quarters the error


def test_hmc_draws_one_momentum_and_one_uniform_a_step():
    init = torch.randn(16, 2, generator=_generator(2), dtype=torch.float64)
    generator, replay = _generator(3), _generator(3)
    hmc_chain(Bumpy(), init, HmcParameters(steps=4, step_size=0.1, leapfrog_steps=3), generator)
    for _ in range(4):
        torch.randn(init.shape, generator=replay, dtype=torch.float64)
        torch.rand(16, generator=replay)
    assert torch.equal(generator.get_state(), replay.get_state())


def test_zero_steps_is_the_identity():
    init = torch.randn(4, 2, generator=_generator(4))
    for chain, parameters in ((hmc_chain, HmcParameters(steps=0)), (underdamped_chain, UnderdampedParameters(steps=0))):
        state, info = chain(Bumpy(), init, parameters, _generator(5))
        assert torch.equal(state.position, init) and info.acceptance is None


def _hmc(step_size: float, leapfrog_steps: int, seed: int):
    parameters = HmcParameters(steps=8, step_size=step_size, leapfrog_steps=leapfrog_steps)
    return lambda energy, init: hmc_chain(energy, init, parameters, _generator(seed))[0].position


def _hmc_without_its_test(step_size: float, leapfrog_steps: int, seed: int):
    """Broken HMC: fresh momenta and leapfrog steps, every end point taken."""
    def move(energy, init):
        generator, state = _generator(seed), _state(init, energy)
        for _ in range(8):
            p = torch.randn(init.shape, generator=generator, dtype=init.dtype)
            state, _ = leapfrog(state, p, energy, energy_and_gradient, step_size, 1.0, leapfrog_steps)
        return state.position
    return move


def _underdamped(step_size: float, friction: float, seed: int, metropolis: bool = True):
    parameters = UnderdampedParameters(steps=20, step_size=step_size, friction=friction, metropolis=metropolis)
    return lambda energy, init: underdamped_chain(energy, init, parameters, _generator(seed))[0].position


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(seed=st.integers(0, 10_000), step_size=st.floats(0.1, 0.9), leapfrog_steps=st.integers(1, 6))
def test_hmc_preserves_a_gaussian_target(seed, step_size, leapfrog_steps):
    assert stays_gaussian(_hmc(step_size, leapfrog_steps, seed), seed, CHAINS, ALPHA / EXAMPLES)


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(seed=st.integers(0, 10_000), step_size=st.floats(0.1, 0.9), friction=st.floats(0.0, 5.0))
def test_underdamped_langevin_preserves_a_gaussian_target(seed, step_size, friction):
    assert stays_gaussian(_underdamped(step_size, friction, seed), seed, CHAINS, ALPHA / EXAMPLES)


def test_preservation_checks_have_teeth():
    """Power checks: HMC that accepts every leapfrog end point, and the unadjusted underdamped
    chain at a large step, leave the gaussian."""
    assert not stays_gaussian(_hmc_without_its_test(0.9, 3, seed=3), 3, CHAINS, ALPHA)
    assert not stays_gaussian(_underdamped(0.9, 1.0, seed=3, metropolis=False), 3, CHAINS, ALPHA)


def _mixture_energy(x):
    shift = torch.tensor([1.5, 0.0], dtype=x.dtype)
    return -torch.logaddexp(-((x - shift) ** 2).sum(1) / 0.5, -((x + shift) ** 2).sum(1) / 0.5)


def _stays_mixture(chain, parameters, seed: int) -> bool:
    """Chains started on the mixture of N(+-1.5 e1, 0.5^2 I) stay on it (KS per coordinate)."""
    generator = _generator(seed)
    sign = torch.where(torch.rand(CHAINS, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
    init = 0.5 * torch.randn((CHAINS, 2), generator=generator, dtype=torch.float64)
    init[:, 0] += 1.5 * sign
    x = chain(_mixture_energy, init, parameters, _generator(seed + 1))[0].position
    level = ks_critical(CHAINS, ALPHA / 4)
    marginal = lambda v: 0.5 * (STANDARD_NORMAL.cdf((v - 1.5) / 0.5) + STANDARD_NORMAL.cdf((v + 1.5) / 0.5))  # noqa: E731
    return ks_statistic(x[:, 0], marginal) < level and ks_statistic(x[:, 1] / 0.5, STANDARD_NORMAL.cdf) < level


def test_both_chains_preserve_a_mixture_and_the_unadjusted_one_at_a_large_step_does_not():
    assert _stays_mixture(hmc_chain, HmcParameters(steps=10, step_size=0.3, leapfrog_steps=4), 11)
    assert _stays_mixture(underdamped_chain, UnderdampedParameters(steps=30, step_size=0.4, friction=1.0), 12)
    assert not _stays_mixture(underdamped_chain, UnderdampedParameters(steps=30, step_size=0.6, friction=1.0,
                                                                       metropolis=False), 12)


def test_temperature_scales_the_target():
    """At temperature T a unit quadratic gives N(0, T): variance within 5 standard errors."""
    init = torch.randn(20000, 1, generator=_generator(13), dtype=torch.float64)
    for chain, parameters in ((hmc_chain, HmcParameters(steps=20, step_size=0.5, temperature=2.5)),
                              (underdamped_chain, UnderdampedParameters(steps=40, step_size=0.5, temperature=2.5))):
        x = chain(lambda v: 0.5 * v.pow(2).sum(1), init, parameters, _generator(14))[0].position
        assert abs(x.var().item() - 2.5) < 5 * 2.5 * math.sqrt(2 / 20000)


def test_clamp_rejects_moves_out_of_the_box():
    init = torch.rand(256, 2, generator=_generator(15), dtype=torch.float64) * 1.6 - 0.8
    for chain, parameters in ((hmc_chain, HmcParameters(steps=10, step_size=0.5, clamp=(-1.0, 1.0))),
                              (underdamped_chain, UnderdampedParameters(steps=10, step_size=0.5, clamp=(-1.0, 1.0)))):
        x = chain(lambda v: 0.1 * v.pow(2).sum(1), init, parameters, _generator(16))[0].position
        assert x.abs().max() <= 1.0 and not torch.equal(x, init)


@pytest.mark.parametrize("config, key", [
    (HmcParameters(step_size=0.0), "step_size"), (HmcParameters(leapfrog_steps=0), "leapfrog_steps"),
    (HmcParameters(temperature=-1.0), "temperature"), (HmcParameters(steps=-1), "steps"),
    (HmcParameters(clamp=(1.0, -1.0)), "clamp"), (UnderdampedParameters(friction=-0.5), "friction"),
    (UnderdampedParameters(metropolis=False, clamp=(-1.0, 1.0)), "clamp"),
])
def test_unusable_parameters_are_problems(config, key):
    assert [k for k, _ in config.problems()] == [key]
    assert HmcParameters().problems() == [] and UnderdampedParameters().problems() == []


def test_kernel_nodes_record_acceptance_and_sample():
    init = torch.randn(64, 2, generator=_generator(17))
    for node in (Hmc("k", HmcParameters(steps=5, step_size=0.3), {"energy": Bumpy()}, CPU),
                 UnderdampedLangevin("k", UnderdampedParameters(steps=5, step_size=0.3), {"energy": Bumpy()}, CPU)):
        ctx = StepContext(0, 0, CPU)
        x = node(ctx, init=init)["x"]
        assert x.shape == init.shape and not x.requires_grad and not torch.equal(x, init)
        assert 0.3 < float(ctx.diagnostics["k/acceptance"]) <= 1.0
        assert {"k/energy_start", "k/energy_end", "k/grad_norm"} <= set(ctx.diagnostics)
