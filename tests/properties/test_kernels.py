"""Langevin and MALA kernels: the four parameterizations, effective temperature, problems(),
clipping and clamping, parameter freezing, the stationary distributions of both kernels, and
hypothesis-drawn invariants (MALA antisymmetry and target preservation with a broken-kernel power
check, energy-shift invariance, shapes and dtypes)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from monte_carlo import ALPHA, examples, ks_critical, ks_statistic, stays_gaussian
from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.energies import MLPEnergy, MLPEnergyConfig
from ebmgraph.nodes.kernels import Langevin, LangevinConfig, Mala, MalaConfig
from ebmgraph.nodes.mcmc.proposal import clip_gradient, energy_and_gradient

CPU = torch.device("cpu")


def _ctx(seed: int = 0, step: int = 0) -> StepContext:
    return StepContext(seed, step, CPU)


def _mlp() -> nn.Module:
    torch.manual_seed(1234)
    return MLPEnergy.build(MLPEnergyConfig(hidden=16, layers=2, activation="swish"), (2,))


class Quadratic(nn.Module):
    """E(x) = sum x^2 / (2 s^2): the gaussian N(0, s^2 T_eff) at temperature T_eff."""

    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x.flatten(1).pow(2).sum(1) / (2 * self.s**2)


class Bumpy(nn.Module):
    """A nonquadratic energy: quartic well with a cosine ripple and a cross term."""

    def forward(self, x):
        x = x.flatten(1)
        return (x.pow(4) / 4 - torch.cos(2 * x) + 0.3 * x.pow(2)).sum(1) + 0.5 * x[:, 0] * x[:, -1]


def _langevin(params: LangevinConfig, energy: nn.Module, name: str = "k") -> Langevin:
    assert params.problems() == []
    return Langevin(name, params, {"energy": energy}, CPU)


def _conventions(eps: float, temperature: float) -> dict[str, LangevinConfig]:
    return {
        "step_size/noise": LangevinConfig(steps=5, step_size=eps**2 / 2, noise=eps),
        "epsilon": LangevinConfig(steps=5, epsilon=eps),
        "eta": LangevinConfig(steps=5, eta=eps**2 / 2),
        "temperature": LangevinConfig(steps=5, step_size=eps**2 / 2 * temperature, noise=eps,
                                          temperature=temperature),
    }


# parameterizations -------------------------------------------------------------------------------

def test_four_conventions_give_bitwise_identical_drift_noise_and_trajectories():
    # dyadic eps and T: every conversion is exact in floating point, so "identical" means identical
    eps, temperature = 0.125, 2.0
    energy = _mlp()
    init = torch.randn(32, 2, generator=torch.Generator().manual_seed(7)) * 2
    results = {}
    for name, params in _conventions(eps, temperature).items():
        _, b, _ = params.resolved()
        assert params.drift == eps**2 / 2, name
        assert b == eps, name
        assert params.effective_temperature == 1.0, name
        results[name] = _langevin(params, energy)(_ctx(seed=3), init=init)["x"]
    reference = results["step_size/noise"]
    assert not torch.allclose(reference, init)  # the chains moved
    for name, x in results.items():
        assert torch.equal(x, reference), name


def test_four_conventions_agree_for_non_dyadic_values():
    eps, temperature = 0.1, 3.0
    energy = _mlp()
    init = torch.randn(16, 2, generator=torch.Generator().manual_seed(8))
    results = {}
    for name, params in _conventions(eps, temperature).items():
        _, b, _ = params.resolved()
        assert math.isclose(params.drift, eps**2 / 2, rel_tol=1e-12), name
        assert math.isclose(b, eps, rel_tol=1e-12), name
        assert math.isclose(params.effective_temperature, 1.0, rel_tol=1e-12), name
        results[name] = _langevin(params, energy)(_ctx(seed=4), init=init)["x"]
    for name, x in results.items():
        torch.testing.assert_close(x, results["step_size/noise"], rtol=0, atol=1e-6, msg=name)


def test_different_seeds_or_steps_give_different_noise():
    params = LangevinConfig(steps=3, step_size=0.01, noise=0.1)
    kernel = _langevin(params, _mlp())
    init = torch.zeros(8, 2)
    x0 = kernel(_ctx(seed=0, step=0), init=init)["x"]
    assert torch.equal(x0, kernel(_ctx(seed=0, step=0), init=init)["x"])
    assert not torch.allclose(x0, kernel(_ctx(seed=1, step=0), init=init)["x"])
    assert not torch.allclose(x0, kernel(_ctx(seed=0, step=1), init=init)["x"])


@pytest.mark.parametrize("params, expected", [
    (LangevinConfig(step_size=0.01, noise=0.1), 0.5),
    (LangevinConfig(step_size=0.01, noise=0.1, temperature=3.0), 1.5),
    (LangevinConfig(step_size=10.0, noise=0.01), 1e-4 / 20),
    (LangevinConfig(epsilon=0.3, temperature=0.5), 0.5),
    (LangevinConfig(eta=0.02, temperature=2.0), 2.0),
    (LangevinConfig(step_size=0.0, noise=0.1), math.inf),
])
def test_effective_temperature_is_T_b2_over_2a(params, expected):
    assert params.effective_temperature == pytest.approx(expected, rel=1e-12)
    a, b, temperature = params.resolved()
    if a:
        assert params.effective_temperature == pytest.approx(temperature * b**2 / (2 * a), rel=1e-12)
    assert "effective T=" in params.describe()


# problems() --------------------------------------------------------------------------------------

def _keys(params: LangevinConfig) -> list[str]:
    return [key for key, _ in params.problems()]


@pytest.mark.parametrize("params", [
    LangevinConfig(step_size=0.1, noise=0.1),
    LangevinConfig(epsilon=0.1),
    LangevinConfig(eta=0.01),
    LangevinConfig(step_size=0.0, noise=0.0, steps=0, clamp=(-1.0, 1.0), clip_grad_value=0.0,
                       clip_grad_norm=0.0),
    LangevinConfig(epsilon=0.1, temperature=1e-3),
])
def test_valid_parameters_have_no_problems(params):
    assert params.problems() == []


@pytest.mark.parametrize("params, found", [
    (LangevinConfig(epsilon=0.1, eta=0.01), "epsilon and eta"),
    (LangevinConfig(step_size=0.1, noise=0.1, epsilon=0.1), "step_size/noise and epsilon"),
    (LangevinConfig(step_size=0.1, noise=0.1, eta=0.1), "step_size/noise and eta"),
    (LangevinConfig(noise=0.1, epsilon=0.1, eta=0.1), "step_size/noise and epsilon and eta"),
    (LangevinConfig(), "none"),
])
def test_two_or_zero_parameterizations_are_a_problem(params, found):
    problems = params.problems()
    assert len(problems) == 1
    _, message = problems[0]
    assert "exactly one" in message and message.endswith(f"found {found}")


@pytest.mark.parametrize("params, missing", [
    (LangevinConfig(step_size=0.1), "noise"),
    (LangevinConfig(noise=0.1), "step_size"),
])
def test_step_size_and_noise_go_together(params, missing):
    problems = params.problems()
    assert [key for key, _ in problems] == [missing]
    assert f"'{missing}' is missing" in problems[0][1]


@pytest.mark.parametrize("params, key", [
    (LangevinConfig(step_size=-0.1, noise=0.1), "step_size"),
    (LangevinConfig(step_size=0.1, noise=-0.1), "noise"),
    (LangevinConfig(epsilon=-0.1), "epsilon"),
    (LangevinConfig(eta=-1e-3), "eta"),
    (LangevinConfig(epsilon=0.1, clip_grad_value=-1.0), "clip_grad_value"),
    (LangevinConfig(epsilon=0.1, clip_grad_norm=-1.0), "clip_grad_norm"),
    (LangevinConfig(epsilon=0.1, temperature=0.0), "temperature"),
    (LangevinConfig(epsilon=0.1, temperature=-2.0), "temperature"),
    (LangevinConfig(epsilon=0.1, steps=-1), "steps"),
])
def test_negative_values_are_problems(params, key):
    problems = params.problems()
    assert [k for k, _ in problems] == [key]
    assert "must be" in problems[0][1]


@pytest.mark.parametrize("clamp", [(1.0, -1.0), (0.5, 0.5)])
def test_clamp_with_low_not_below_high_is_a_problem(clamp):
    problems = LangevinConfig(epsilon=0.1, clamp=clamp).problems()
    assert [k for k, _ in problems] == ["clamp"]
    assert "low < high" in problems[0][1]


def test_all_problems_are_reported_at_once():
    keys = _keys(LangevinConfig(step_size=-1.0, noise=-1.0, temperature=0.0, clamp=(1.0, 0.0), steps=-2))
    assert sorted(keys) == sorted(["step_size", "noise", "temperature", "clamp", "steps"])


# identity, clamp, clipping ------------------------------------------------------------------------

def test_zero_step_size_and_zero_noise_is_the_identity():
    init = torch.randn(10, 2, generator=torch.Generator().manual_seed(0)) * 3
    x = _langevin(LangevinConfig(steps=7, step_size=0.0, noise=0.0), _mlp())(_ctx(), init=init)["x"]
    assert torch.equal(x, init)
    x = _langevin(LangevinConfig(steps=7, epsilon=0.0), _mlp())(_ctx(), init=init)["x"]
    assert torch.equal(x, init)


def test_zero_steps_returns_the_init_detached():
    init = torch.randn(4, 2, requires_grad=True)
    x = _langevin(LangevinConfig(steps=0, epsilon=0.5), _mlp())(_ctx(), init=init)["x"]
    assert torch.equal(x, init.detach()) and not x.requires_grad


def test_output_is_detached_even_from_a_differentiable_init():
    init = (torch.randn(4, 2) * 1.0).requires_grad_(True) * 2
    x = _langevin(LangevinConfig(steps=2, epsilon=0.1), _mlp())(_ctx(), init=init)["x"]
    assert not x.requires_grad and x.grad_fn is None


def test_clamp_holds_its_bounds():
    init = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)) * 0.5
    params = LangevinConfig(steps=5, step_size=0.01, noise=2.0, clamp=(-0.5, 0.25))
    x = _langevin(params, _mlp())(_ctx(), init=init)["x"]
    assert x.min() >= -0.5 and x.max() <= 0.25
    assert (x == -0.5).any() and (x == 0.25).any()  # the noise is large enough to hit both walls
    assert ((x > -0.5) & (x < 0.25)).any()


def test_clip_gradient_by_value():
    grad = torch.randn(64, 3, 4, generator=torch.Generator().manual_seed(2)) * 5
    clipped = clip_gradient(grad, 1.5, None)
    assert clipped.abs().max() <= 1.5
    small = grad.abs() <= 1.5
    assert torch.equal(clipped[small], grad[small])
    assert torch.equal(clipped[~small], 1.5 * grad[~small].sign())
    assert torch.equal(clip_gradient(grad, None, None), grad)


def test_clip_gradient_by_per_sample_norm():
    generator = torch.Generator().manual_seed(3)
    grad = torch.randn(64, 3, 4, 4, generator=generator) * torch.rand(64, 1, 1, 1, generator=generator) * 20
    norm = 10.0
    clipped = clip_gradient(grad, None, norm)
    before, after = grad.flatten(1).norm(dim=1), clipped.flatten(1).norm(dim=1)
    assert (before > norm).any() and (before < norm).any()
    assert (after <= norm * (1 + 1e-6)).all()
    big = before > norm
    torch.testing.assert_close(after[big], torch.full_like(after[big], norm))
    assert torch.equal(clipped[~big], grad[~big])
    # a rescaling: each sample keeps its direction
    cosine = torch.nn.functional.cosine_similarity(clipped.flatten(1), grad.flatten(1), dim=1)
    torch.testing.assert_close(cosine, torch.ones_like(cosine))
    # the norm is per sample, not over the whole batch
    assert clipped.flatten().norm() > norm


def test_clip_gradient_value_then_norm():
    grad = torch.tensor([[3.0, 4.0], [0.1, -0.2], [-30.0, 0.0]])
    clipped = clip_gradient(grad, 2.0, 1.0)
    expected = torch.tensor([[2.0, 2.0], [0.1, -0.2], [-2.0, 0.0]])
    expected_norm = expected.norm(dim=1, keepdim=True)
    expected = expected * (1.0 / expected_norm).clamp(max=1.0)
    torch.testing.assert_close(clipped, expected)


def test_clip_gradient_leaves_zero_gradients_finite():
    clipped = clip_gradient(torch.zeros(3, 2), None, 1.0)
    assert torch.equal(clipped, torch.zeros(3, 2))


def test_kernel_applies_gradient_clipping():
    class Steep(nn.Module):
        def forward(self, x):
            return 100 * x.pow(2).sum(1)

    init = torch.randn(32, 3, generator=torch.Generator().manual_seed(4))
    ctx = _ctx()
    x = _langevin(LangevinConfig(steps=1, step_size=0.1, noise=0.0, clip_grad_value=0.5), Steep())(ctx, init=init)["x"]
    # grad = 200 x, clipped to +-0.5: every coordinate moves at most drift * 0.5
    torch.testing.assert_close(x, init - 0.1 * (200 * init).clamp(-0.5, 0.5))
    assert (x - init).abs().max() <= 0.05 + 1e-7

    ctx = _ctx()
    _langevin(LangevinConfig(steps=3, step_size=1e-4, noise=0.0, clip_grad_norm=2.0), Steep())(ctx, init=init)
    assert float(ctx.diagnostics["k/grad_norm"]) <= 2.0 * (1 + 1e-6)


def test_kernel_records_energy_and_gradient_diagnostics():
    ctx = _ctx()
    energy = Quadratic(1.0)
    init = torch.full((8, 1), 2.0)
    _langevin(LangevinConfig(steps=4, step_size=0.25, noise=0.0), energy)(ctx, init=init)
    # x_k = 2 * 0.75^k: energies at the start (k = 0) and at the returned samples (k = 4); the
    # gradient norm is that of the last step taken (k = 3)
    assert float(ctx.diagnostics["k/energy_start"]) == pytest.approx(2.0)
    assert float(ctx.diagnostics["k/energy_end"]) == pytest.approx((2 * 0.75**4) ** 2 / 2)
    assert float(ctx.diagnostics["k/grad_norm"]) == pytest.approx(2 * 0.75**3)


def test_kernel_skips_costly_diagnostics_on_unlogged_steps():
    ctx = StepContext(0, 0, torch.device("cpu"), diagnostics_wanted=False)
    _langevin(LangevinConfig(steps=2, step_size=0.25, noise=0.0), Quadratic(1.0))(ctx, init=torch.ones(4, 1))
    assert "k/energy_end" not in ctx.diagnostics


# no parameter gradients while sampling -------------------------------------------------------------

def test_parameters_accumulate_no_gradient_while_sampling():
    energy = _mlp()
    frozen = next(energy.parameters())
    frozen.requires_grad_(False)  # a parameter the user froze stays frozen afterwards
    seen = []

    def check(module, args, output):
        seen.append([p.requires_grad for p in module.parameters()])

    handle = energy.register_forward_hook(check)
    for kernel in (Langevin("k", LangevinConfig(steps=3, epsilon=0.1), {"energy": energy}, CPU),
                   Mala("m", MalaConfig(steps=3, epsilon=0.1), {"energy": energy}, CPU)):
        seen.clear()
        before = [p.detach().clone() for p in energy.parameters()]
        kernel(_ctx(), init=torch.randn(8, 2))
        assert seen and all(not any(flags) for flags in seen), kernel.name  # frozen during every call
        assert all(p.grad is None for p in energy.parameters()), kernel.name
        assert [p.requires_grad for p in energy.parameters()] == [False] + [True] * (len(before) - 1)
        assert all(torch.equal(p, q) for p, q in zip(energy.parameters(), before))
    handle.remove()


def test_existing_parameter_gradients_are_untouched_by_sampling():
    energy = _mlp()
    grads = [torch.full_like(p, 0.5) for p in energy.parameters()]
    for p, g in zip(energy.parameters(), grads):
        p.grad = g.clone()
    _langevin(LangevinConfig(steps=3, epsilon=0.1), energy)(_ctx(), init=torch.randn(8, 2))
    assert all(torch.equal(p.grad, g) for p, g in zip(energy.parameters(), grads))
    assert all(p.requires_grad for p in energy.parameters())


def test_requires_grad_is_restored_when_the_energy_raises():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x):
            raise RuntimeError("boom")

    energy = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        _langevin(LangevinConfig(steps=1, epsilon=0.1), energy)(_ctx(), init=torch.zeros(2, 1))
    assert energy.w.requires_grad and energy.w.grad is None


# stationary distributions ------------------------------------------------------------------------

def _variance_matches(x: torch.Tensor, expected: float) -> bool:
    """Mean 0 and variance ``expected`` within 5 standard errors of n independent chains."""
    n = x.numel()
    x = x.double().flatten()
    mean, var = x.mean().item(), x.var().item()
    return abs(mean) < 5 * math.sqrt(expected / n) and abs(var - expected) < 5 * expected * math.sqrt(2 / (n - 1))


def _assert_variance(x: torch.Tensor, expected: float, label: str) -> None:
    assert _variance_matches(x, expected), f"{label}: mean {x.mean().item()}, variance {x.var().item()}, expected {expected}"


@pytest.mark.parametrize("s, a, b, temperature", [
    (1.0, 0.5, 1.0, 1.0),              # b^2 = 2a: closed form s^2 / (1 - a / (2 s^2)) = 4/3
    (0.5, 0.1, math.sqrt(0.2), 1.0),   # = 0.25 / 0.8
    (1.0, 0.8, math.sqrt(1.6), 2.0),   # drift a/T = 0.4, T_eff = 2
])
def test_unadjusted_langevin_stationary_variance_on_a_quadratic(s, a, b, temperature):
    n = 10000
    params = LangevinConfig(steps=60, step_size=a, noise=b, temperature=temperature)
    x = _langevin(params, Quadratic(s))(_ctx(seed=11), init=torch.zeros(n, 1))["x"]
    # x' = (1 - d / s^2) x + b xi with d = a / T: var = b^2 / (1 - (1 - d / s^2)^2)
    d = a / temperature
    expected = b**2 / (1 - (1 - d / s**2) ** 2)
    if temperature == 1.0 and b**2 == pytest.approx(2 * a):
        assert expected == pytest.approx(s**2 / (1 - a / (2 * s**2)))
    # the discretization bias is large enough that the exact target would fail this test
    small_step = s**2 * params.effective_temperature
    assert abs(expected - small_step) > 10 * expected * math.sqrt(2 / (n - 1))
    _assert_variance(x, expected, f"ULA s={s} a={a}")


def test_a_kernel_with_the_wrong_noise_scale_fails_the_variance_check():
    """Power check: noise 10% too large (b = 1.1 sqrt(2a)) moves the stationary variance out of the
    5-standard-error interval of the closed form for b = sqrt(2a)."""
    n, s, a = 10000, 1.0, 0.5
    expected = s**2 / (1 - a / (2 * s**2))
    wrong = LangevinConfig(steps=60, step_size=a, noise=1.1 * math.sqrt(2 * a))
    x = _langevin(wrong, Quadratic(s))(_ctx(seed=11), init=torch.zeros(n, 1))["x"]
    assert not _variance_matches(x, expected)


def _energy_grad(x):
    return energy_and_gradient(Bumpy(), x)


def test_mala_log_acceptance_is_antisymmetric_and_matches_the_mh_ratio():
    generator = torch.Generator().manual_seed(5)
    config = MalaConfig(steps=1, step_size=0.07, noise=0.3, temperature=1.5)
    mala = Mala("m", config, {"energy": Bumpy()}, CPU)
    x = torch.randn(64, 3, generator=generator, dtype=torch.float64)
    y = x + 0.5 * torch.randn(64, 3, generator=generator, dtype=torch.float64)
    ex, gx = _energy_grad(x)
    ey, gy = _energy_grad(y)
    forward = mala.log_acceptance(x, y, ex, ey, gx, gy)
    backward = mala.log_acceptance(y, x, ey, ex, gy, gx)
    torch.testing.assert_close(forward, -backward, rtol=0, atol=1e-5)
    assert forward.abs().max() > 0.1  # not trivially zero

    # the Metropolis-Hastings ratio of pi = exp(-E / T_eff) and q(y|x) = N(x - (a/T) grad E(x), b^2)
    a, b, temperature = config.resolved()
    t_eff = config.effective_temperature
    assert t_eff == pytest.approx(temperature * b**2 / (2 * a))
    q = torch.distributions.Normal
    log_q_xy = q(y - a / temperature * gy, b).log_prob(x).sum(1)
    log_q_yx = q(x - a / temperature * gx, b).log_prob(y).sum(1)
    expected = (-ey / t_eff + log_q_xy) - (-ex / t_eff + log_q_yx)
    torch.testing.assert_close(forward, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("a, b, temperature, s", [
    (0.8, math.sqrt(1.6), 1.0, 1.0),   # T_eff = 1; unadjusted Langevin would give variance 5/3
    (0.9, 1.5, 1.0, 0.7),              # T_eff = 1.25
    (1.2, math.sqrt(1.2), 2.0, 1.0),   # tied convention at T = 2: drift 0.6, T_eff = 1
])
def test_mala_keeps_the_target_variance_with_a_large_step(a, b, temperature, s):
    n = 10000
    config = MalaConfig(steps=80, step_size=a, noise=b, temperature=temperature)
    mala = Mala("m", config, {"energy": Quadratic(s)}, CPU)
    ctx = _ctx(seed=12)
    init = torch.randn(n, 1, generator=torch.Generator().manual_seed(13)) * 2.0  # not the target
    x = mala(ctx, init=init)["x"]
    target = s**2 * config.effective_temperature
    d = a / temperature
    unadjusted = b**2 / (1 - (1 - d / s**2) ** 2)
    assert abs(unadjusted - target) > 10 * target * math.sqrt(2 / (n - 1))  # the correction matters
    _assert_variance(x, target, f"MALA a={a} b={b} T={temperature}")
    acceptance = float(ctx.diagnostics["m/acceptance"])
    assert 0.05 < acceptance < 0.99
    assert {"m/energy_start", "m/energy_end", "m/grad_norm"} <= set(ctx.diagnostics)


def test_mala_with_clamp_stays_in_the_box_and_zero_steps_is_identity():
    init = torch.rand(128, 2, generator=torch.Generator().manual_seed(9)) * 1.6 - 0.8
    mala = Mala("m", MalaConfig(steps=20, step_size=0.5, noise=1.0, clamp=(-1.0, 1.0)), {"energy": _mlp()}, CPU)
    x = mala(_ctx(), init=init)["x"]
    assert x.min() >= -1.0 and x.max() <= 1.0 and not torch.equal(x, init)
    mala = Mala("m", MalaConfig(steps=0, epsilon=0.5), {"energy": _mlp()}, CPU)
    ctx = _ctx()
    assert torch.equal(mala(ctx, init=init)["x"], init)
    assert "m/acceptance" not in ctx.diagnostics


# hypothesis-drawn invariants ------------------------------------------------------------------------

class Mixture2D(nn.Module):
    """E(x) = -log of an equal mixture of N(-1.5 e1, 0.5^2 I) and N(+1.5 e1, 0.5^2 I) (2-D)."""

    def forward(self, x):
        shift = torch.tensor([1.5, 0.0], dtype=x.dtype)
        log_a = -((x - shift) ** 2).sum(1) / (2 * 0.25)
        log_b = -((x + shift) ** 2).sum(1) / (2 * 0.25)
        return -torch.logaddexp(log_a, log_b)

    @staticmethod
    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        sign = torch.where(torch.rand(n, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
        x = 0.5 * torch.randn((n, 2), generator=generator, dtype=torch.float64)
        return x + torch.stack([1.5 * sign, torch.zeros(n, dtype=torch.float64)], dim=1)


class UncorrectedMala(Mala):
    """A broken MALA that drops the proposal densities from the acceptance ratio (power check)."""

    def log_acceptance(self, x, y, energy_x, energy_y, grad_x, grad_y):
        return (energy_x - energy_y) / self.config.effective_temperature


# Each hypothesis example runs 2 KS tests (one per coordinate or projection); at most EXAMPLES
# examples run, so a Bonferroni level of ALPHA / (2 * EXAMPLES) keeps the family-wise false-alarm
# rate of a correct kernel below ALPHA (and the seeds are fixed, so the outcome is reproducible).
EXAMPLES, CHAINS = examples(12), 4000


def _stays_gaussian(kernel_type, seed: int, a: float, steps: int) -> bool:
    """The kernel keeps a random 2-D gaussian at the Bonferroni-corrected level."""
    config = MalaConfig(steps=steps, step_size=a, noise=math.sqrt(2 * a))
    return stays_gaussian(lambda energy, init: kernel_type("m", config, {"energy": energy}, CPU)(
        _ctx(seed=seed), init=init)["x"], seed, CHAINS, ALPHA / EXAMPLES)


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(seed=st.integers(0, 10_000), a=st.floats(0.05, 0.6), steps=st.integers(1, 10))
def test_mala_preserves_a_gaussian_target(seed, a, steps):
    assert _stays_gaussian(Mala, seed, a, steps)


def test_gaussian_preservation_check_has_teeth():
    """Power check: MALA without the proposal-density correction leaves the target."""
    assert not _stays_gaussian(UncorrectedMala, seed=3, a=0.5, steps=10)


def _stays_mixture(kernel_type, seed: int) -> bool:
    """Chains started from the 2-D mixture stay on it: KS of the first coordinate against the
    mixture's marginal cdf, and of the second against N(0, 0.5^2)."""
    generator = torch.Generator().manual_seed(seed)
    init = Mixture2D.sample(CHAINS, generator)
    kernel = kernel_type("m", MalaConfig(steps=20, step_size=0.1, noise=math.sqrt(0.2)), {"energy": Mixture2D()}, CPU)
    x = kernel(_ctx(seed=seed), init=init)["x"]
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 0.5)
    level = ks_critical(CHAINS, ALPHA / 2)
    first = ks_statistic(x[:, 0], lambda v: 0.5 * (normal.cdf(v - 1.5) + normal.cdf(v + 1.5)))
    return first < level and ks_statistic(x[:, 1], normal.cdf) < level


def test_mala_preserves_a_mixture_and_the_broken_kernel_does_not():
    assert _stays_mixture(Mala, seed=21)
    assert not _stays_mixture(UncorrectedMala, seed=21)


class Shifted(nn.Module):
    def __init__(self, energy: nn.Module, shift: float):
        super().__init__()
        self.energy, self.shift = energy, shift

    def forward(self, x):
        return self.energy(x) + self.shift


@settings(derandomize=True, deadline=None, max_examples=examples(25))
@given(shift=st.floats(-1e3, 1e3), seed=st.integers(0, 10_000), kernel=st.sampled_from(["langevin", "mala"]))
def test_adding_a_constant_to_the_energy_leaves_the_trajectory_unchanged(shift, seed, kernel):
    init = torch.randn((32, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    config = (LangevinConfig if kernel == "langevin" else MalaConfig)(steps=10, step_size=0.1, noise=0.4)
    kernel_type = Langevin if kernel == "langevin" else Mala
    plain = kernel_type("k", config, {"energy": Bumpy()}, CPU)(_ctx(seed=seed), init=init)["x"]
    shifted = kernel_type("k", config, {"energy": Shifted(Bumpy(), shift)}, CPU)(_ctx(seed=seed), init=init)["x"]
    # the gradient is unchanged exactly; MALA's energy difference only up to rounding of E + c
    torch.testing.assert_close(shifted, plain, rtol=0, atol=1e-9)


def test_shift_check_has_teeth():
    """Power check: a kernel whose step depends on the energy's value (here through a
    value-dependent temperature) fails the comparison above."""
    class ValueScaled(Langevin):
        def gradient_function(self, compile_mode="default"):
            gradient = super().gradient_function(compile_mode)

            def scaled(energy, x):
                value, grad = gradient(energy, x)
                return value, grad / (1 + value.abs().view(-1, 1))
            return scaled
    init = torch.randn((32, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    config = LangevinConfig(steps=10, step_size=0.1, noise=0.4)
    plain = ValueScaled("k", config, {"energy": Bumpy()}, CPU)(_ctx(), init=init)["x"]
    shifted = ValueScaled("k", config, {"energy": Shifted(Bumpy(), 50.0)}, CPU)(_ctx(), init=init)["x"]
    assert not torch.allclose(shifted, plain, rtol=0, atol=1e-9)


@settings(derandomize=True, deadline=None, max_examples=examples(25))
@given(batch=st.integers(1, 5), sample_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       dtype=st.sampled_from([torch.float32, torch.float64]), kernel=st.sampled_from(["langevin", "mala"]),
       steps=st.integers(0, 3))
def test_kernels_keep_shape_dtype_and_device(batch, sample_shape, dtype, kernel, steps):
    init = torch.randn((batch, *sample_shape), dtype=dtype)
    config = (LangevinConfig if kernel == "langevin" else MalaConfig)(steps=steps, step_size=0.05, noise=0.3)
    x = (Langevin if kernel == "langevin" else Mala)("k", config, {"energy": Bumpy()}, CPU)(_ctx(), init=init)["x"]
    assert x.shape == init.shape and x.dtype == dtype and x.device == init.device and not x.requires_grad


@settings(derandomize=True, deadline=None, max_examples=examples(25))
@given(a=st.floats(1e-3, 2.0), b=st.floats(1e-3, 2.0), temperature=st.floats(0.1, 10.0), seed=st.integers(0, 10_000))
def test_mala_log_acceptance_is_antisymmetric_for_drawn_parameters(a, b, temperature, seed):
    generator = torch.Generator().manual_seed(seed)
    mala = Mala("m", MalaConfig(steps=1, step_size=a, noise=b, temperature=temperature), {"energy": Bumpy()}, CPU)
    x = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    y = x + b * torch.randn(16, 3, generator=generator, dtype=torch.float64)
    ex, gx = _energy_grad(x)
    ey, gy = _energy_grad(y)
    forward = mala.log_acceptance(x, y, ex, ey, gx, gy)
    backward = mala.log_acceptance(y, x, ey, ex, gy, gx)
    torch.testing.assert_close(forward, -backward, rtol=1e-9, atol=1e-9 * (1 + forward.abs().max().item()))


def test_antisymmetry_check_has_teeth():
    """Power check: a log acceptance that forgets the reverse proposal is not antisymmetric."""
    class OneSided(Mala):
        def log_acceptance(self, x, y, energy_x, energy_y, grad_x, grad_y):
            drift, noise = self.config.drift, self.config.resolved()[1]
            return (energy_x - energy_y) + ((y - x + drift * grad_x) ** 2).sum(1) / (2 * noise**2)
    mala = OneSided("m", MalaConfig(steps=1, step_size=0.2, noise=0.6), {"energy": Bumpy()}, CPU)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = x + 0.6 * torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ex, gx = _energy_grad(x)
    ey, gy = _energy_grad(y)
    assert not torch.allclose(mala.log_acceptance(x, y, ex, ey, gx, gy), -mala.log_acceptance(y, x, ey, ex, gy, gx))
