"""The diffusion amortizer's gaussian process (DAMC supplementary eq. 3): the log-SNR schedule, the
closed-form forward marginal against the composition of noising steps, the reverse posterior
against the marginal it must reproduce, each statistical check with a broken-step power check;
and the amortizer's sampler and loss on a known noise predictor."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from monte_carlo import ALPHA, STANDARD_NORMAL, examples, ks_critical, ks_statistic
from ebmgraph.nodes.amortizers import DiffusionAmortizer, DiffusionAmortizerConfig, DiffusionAmortizerType
from ebmgraph.nodes.diffusions import (
    LogSNRSchedule, clean_from_noise, forward_marginal, forward_transition, reverse_posterior,
    signal_and_noise_scales)

CHAINS, DIM = 4000, 3
EXAMPLES = examples(15)
# each example runs DIM KS tests: Bonferroni level ALPHA / (DIM * EXAMPLES)
LEVEL = ks_critical(CHAINS, ALPHA / (DIM * EXAMPLES))

schedules = st.tuples(st.floats(-10.0, 5.0), st.floats(1.0, 10.0)).map(lambda p: LogSNRSchedule(p[0], p[0] + p[1]))


@settings(derandomize=True, deadline=None, max_examples=examples(40))
@given(schedule=schedules, u=st.lists(st.integers(0, 1000), min_size=2, max_size=20, unique=True))
def test_schedule_runs_from_max_to_min_and_is_variance_preserving(schedule, u):
    ends = schedule.log_snr(torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ends, torch.tensor([schedule.maximum, schedule.minimum], dtype=torch.float64))
    times = torch.tensor(sorted(u), dtype=torch.float64) / 1000
    log_snr = schedule.log_snr(times)
    assert (log_snr.diff() < 0).all()
    alpha, sigma = signal_and_noise_scales(log_snr)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha))
    torch.testing.assert_close((alpha**2 / sigma**2).log(), log_snr)


@settings(derandomize=True, deadline=None, max_examples=examples(40))
@given(log_snr=st.floats(-10.0, 15.0), seed=st.integers(0, 2**31))
def test_clean_from_noise_inverts_noising(log_snr, seed):
    generator = torch.Generator().manual_seed(seed)
    z0, noise = torch.randn(2, 8, DIM, generator=generator, dtype=torch.float64)
    mean, std = forward_marginal(z0, torch.tensor(log_snr, dtype=torch.float64))
    torch.testing.assert_close(clean_from_noise(mean + std * noise, noise, torch.tensor(log_snr, dtype=torch.float64)), z0)


def _standardized(z: torch.Tensor, z0: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    mean, std = forward_marginal(z0, log_snr)
    return (z - mean) / std


def _is_standard_normal(white: torch.Tensor) -> bool:
    return all(ks_statistic(white[:, i], STANDARD_NORMAL.cdf) < LEVEL for i in range(white.shape[1]))


def _noised_step_by_step(transition, schedule: LogSNRSchedule, steps: int, seed: int) -> bool:
    """From clean z_0, ``steps`` noising steps by ``transition`` through u = i / steps (the first from
    λ = +inf to λ(0)): is the last state distributed as the closed-form marginal q(z_λ(1) | z_0)?
    (KS of each standardized coordinate against N(0, 1).)"""
    generator = torch.Generator().manual_seed(seed)
    z0 = 2 * torch.randn(DIM, generator=generator, dtype=torch.float64).expand(CHAINS, DIM)
    log_snrs = schedule.log_snr(torch.linspace(0, 1, steps + 1, dtype=torch.float64))
    log_snrs = torch.cat([torch.tensor([math.inf], dtype=torch.float64), log_snrs])
    z = z0
    for s, t in zip(log_snrs, log_snrs[1:]):
        mean, std = transition(z, s, t)
        z = mean + std * torch.randn(z.shape, generator=generator, dtype=torch.float64)
    return _is_standard_normal(_standardized(z, z0, log_snrs[-1]))


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(schedule=schedules, steps=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_noising_step_by_step_has_the_closed_form_marginal(schedule, steps, seed):
    assert _noised_step_by_step(forward_transition, schedule, steps, seed)


def _transition_with_marginal_scale(z_s, log_snr_s, log_snr_t):
    """A plausible bug: each step scales by the marginal α_t instead of α_t / α_s."""
    alpha_t, _ = signal_and_noise_scales(log_snr_t)
    return alpha_t * z_s, forward_transition(z_s, log_snr_s, log_snr_t)[1]


def _transition_with_marginal_noise(z_s, log_snr_s, log_snr_t):
    """A plausible bug: each step adds the marginal noise σ_t instead of the step's own."""
    _, sigma_t = signal_and_noise_scales(log_snr_t)
    return forward_transition(z_s, log_snr_s, log_snr_t)[0], sigma_t.expand_as(z_s)


@pytest.mark.parametrize("broken", [_transition_with_marginal_scale, _transition_with_marginal_noise])
def test_marginal_check_has_teeth(broken):
    """Power check: both broken noising steps miss the closed-form marginal."""
    assert not _noised_step_by_step(broken, LogSNRSchedule(-1.0, 9.8), steps=10, seed=3)


def _reverse_reproduces_marginal(posterior, schedule: LogSNRSchedule, u_s: float, gap: float, seed: int) -> bool:
    """z_t ~ q(z_t | z_0) closed form, then z_s ~ ``posterior``(z_t, z_0): is z_s ~ q(z_s | z_0)?"""
    generator = torch.Generator().manual_seed(seed)
    z0 = 2 * torch.randn(DIM, generator=generator, dtype=torch.float64).expand(CHAINS, DIM)
    log_snr_s, log_snr_t = schedule.log_snr(torch.tensor([u_s, min(u_s + gap, 1.0)], dtype=torch.float64))
    mean, std = forward_marginal(z0, log_snr_t)
    z_t = mean + std * torch.randn(z0.shape, generator=generator, dtype=torch.float64)
    mean, std = posterior(z_t, z0, log_snr_s, log_snr_t)
    z_s = mean + std * torch.randn(z0.shape, generator=generator, dtype=torch.float64)
    return _is_standard_normal(_standardized(z_s, z0, log_snr_s))


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(schedule=schedules, u_s=st.floats(0.0, 0.95), gap=st.floats(0.02, 0.5), seed=st.integers(0, 2**31))
def test_reverse_posterior_reproduces_the_marginal(schedule, u_s, gap, seed):
    assert _reverse_reproduces_marginal(reverse_posterior, schedule, u_s, gap, seed)


def test_reverse_posterior_check_has_teeth():
    """Power check: the posterior with DDPM's 'large' variance (1 - r) σ_t² misses the marginal."""
    def large_variance(z_t, z0, log_snr_s, log_snr_t):
        mean, _ = reverse_posterior(z_t, z0, log_snr_s, log_snr_t)
        _, sigma_t = signal_and_noise_scales(log_snr_t)
        return mean, (-torch.expm1(log_snr_t - log_snr_s) * sigma_t**2).sqrt().expand_as(z_t)
    assert not _reverse_reproduces_marginal(large_variance, LogSNRSchedule(-5.1, 9.8), 0.3, 0.3, seed=3)


class GaussianDenoiser(nn.Module):
    """The exact ε-predictor E[ε | z_λ] = σ (z_λ - α m) / (α² s² + σ²) for data N(m, s² I)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, z, log_snr, context):
        alpha, sigma = signal_and_noise_scales(log_snr[:, None].to(z.dtype))
        return sigma * (z - alpha * self.mean) / (alpha**2 * self.std**2 + sigma**2)


def _gaussian_amortizer(steps: int, mean: float = 1.5, std: float = 0.5) -> DiffusionAmortizer:
    return DiffusionAmortizer(DIM, steps, LogSNRSchedule(-5.1, 9.8), nn.Identity(), 1, GaussianDenoiser(mean, std))


def _sampler_moments(schedule: LogSNRSchedule, steps: int, mean: float, std: float, noise: bool) -> tuple[float, float]:
    """Exact mean and variance of the ancestral sampler's output with the exact denoiser of N(m, s²):
    every step is affine in z plus gaussian noise, so the moments follow a scalar recursion."""
    log_snrs = schedule.log_snr(torch.linspace(0, 1, steps, dtype=torch.float64)).tolist()

    def clean_map(log_snr):  # z0_hat = c1 z + c0
        alpha, sigma = math.sqrt(1 / (1 + math.exp(-log_snr))), math.sqrt(1 / (1 + math.exp(log_snr)))
        k = sigma / (alpha**2 * std**2 + sigma**2)
        return (1 - sigma * k) / alpha, sigma * k * alpha * mean / alpha

    mu, var = 0.0, 1.0
    for i in reversed(range(1, steps)):
        c1, c0 = clean_map(log_snrs[i])
        s_, t_ = log_snrs[i - 1], log_snrs[i]
        ratio = math.exp(t_ - s_)
        alpha_s, alpha_t = math.sqrt(1 / (1 + math.exp(-s_))), math.sqrt(1 / (1 + math.exp(-t_)))
        a, b = ratio * alpha_s / alpha_t, (1 - ratio) * alpha_s
        mu, var = (a + b * c1) * mu + b * c0, (a + b * c1) ** 2 * var
        var += (1 - ratio) / (1 + math.exp(s_)) if noise else 0.0
    c1, c0 = clean_map(log_snrs[0])
    return c1 * mu + c0, c1**2 * var


@pytest.mark.parametrize("noise", [True, False])
def test_sampler_with_the_exact_denoiser_has_the_exact_output_moments(noise):
    """With E[ε | z] of N(m, s²) the sampler's draws have the mean and variance its reverse steps
    imply (within 5 standard errors); with noise that variance is within 1.5% of s² at 1000 steps."""
    n, steps = 20000, 100
    amortizer = _gaussian_amortizer(steps)
    z = amortizer.sample(torch.zeros(n, 1, dtype=torch.float64), torch.Generator().manual_seed(0), noise)
    assert z.dtype == torch.float64 and z.shape == (n, DIM)
    mean, var = _sampler_moments(amortizer.schedule, steps, 1.5, 0.5, noise)
    assert (z.mean(0) - mean).abs().max() < 5 * math.sqrt(var / n)
    assert (z.var(0) - var).abs().max() < 5 * var * math.sqrt(2 / (n - 1))
    if noise:
        assert abs(_sampler_moments(amortizer.schedule, 1000, 1.5, 0.5, noise)[1] / 0.25 - 1) < 0.015


def test_denoising_loss_of_the_exact_denoiser_is_below_a_wrong_one():
    """The exact E[ε | z] minimizes the expected loss: a denoiser for the wrong mean scores worse."""
    z0 = 1.5 + 0.5 * torch.randn(20000, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    context = torch.zeros(20000, 1, dtype=torch.float64)
    exact = _gaussian_amortizer(100).denoising_loss(z0, context, torch.Generator().manual_seed(2)).mean()
    wrong = _gaussian_amortizer(100, mean=1.0).denoising_loss(z0, context, torch.Generator().manual_seed(2)).mean()
    assert exact < wrong


def test_built_amortizer_keeps_shapes_and_starts_as_the_standard_normal_denoiser():
    """Untrained, ε_phi(z, λ, c) = σ_λ z for any context: the exact ε-predictor of N(0, I) latents."""
    config = DiffusionAmortizerConfig(latent_dim=5, steps=4, widths=[8, 16], time_embedding=8, context_embedding=6,
                                      context_channels=4, context_stages=1)
    assert config.problems() == []
    amortizer = DiffusionAmortizerType.build(config, (1, 8, 8))
    x = torch.randn(7, 1, 8, 8)
    z = amortizer.sample(amortizer.context(x), torch.Generator().manual_seed(0))
    assert z.shape == (7, 5)
    loss = amortizer.denoising_loss(z, amortizer.context(x), torch.Generator().manual_seed(0))
    assert loss.shape == (7,) and (loss >= 0).all()
    log_snr = torch.linspace(-5, 9, 7)
    _, sigma = signal_and_noise_scales(log_snr)
    torch.testing.assert_close(amortizer.predictor(z, log_snr, amortizer.context(x)), sigma[:, None] * z)


@pytest.mark.parametrize("field, value", [("steps", 0), ("log_snr_min", 10.0), ("widths", []), ("latent_dim", 0)])
def test_config_problems(field, value):
    assert [key for key, _ in DiffusionAmortizerConfig(**{field: value}).problems()] == [field]
