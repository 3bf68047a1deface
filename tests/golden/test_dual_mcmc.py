"""Golden test: the compiled dual_mcmc step's gradients equal a hand transcription of Cui & Han
(2023), eq. 17-21 and Algorithm 1, on tiny models with fixed seeds."""

import math

import torch

from captured_gradients import first_step
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.program import Program
from ebmgraph.engine.load import load_graph

# Spectral norm is off: its power iteration runs once per forward, a model detail outside eq. 17-21.
TINY = ("data.batch_size=6", "models.energy.channels=4", "models.energy.spectral_norm=false", "models.generator.channels=4",
        "models.generator.latent_dim=3", "models.encoder.channels=4", "models.encoder.latent_dim=3",
        "nodes.revised_x.steps=3", "nodes.revised_z.steps=3", "train.progress=false")
S_X, NOISE_X = 0.5, 0.001      # eq. 20 as in the reference code: x -= s^2/2 grad E + 0.001 U
S_Z, SIGMA = 0.1, 0.3          # eq. 21: z += s^2/2 grad log p(z|x) + s U; generator sigma


def _grad(loss, module):
    return torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)


def _log_joint(g, x, z):
    """log p_theta(x, z) = log N(x; g(z), sigma^2 I) + log N(z; 0, I), written out."""
    d, k = x[0].numel(), z.shape[1]
    return (-((x - g(z)) ** 2).flatten(1).sum(1) / (2 * SIGMA**2) - d * math.log(2 * math.pi * SIGMA**2) / 2
            - (z**2).sum(1) / 2 - k * math.log(2 * math.pi) / 2)


def _log_q(encoder, z, x):
    mean, log_var = encoder.body(x).chunk(2, dim=1)
    return (-0.5 * ((z - mean) ** 2 / log_var.exp() + log_var + math.log(2 * math.pi))).sum(1)


def _hand_transcription(models, data_x, ctx, observation_noise=True):
    energy, g, encoder = models["energy"], models["generator"], models["encoder"]
    batch = len(data_x)
    # Algorithm 1: prior latent z ~ N(0, I); eq. 20 from x0 ~ p_theta(x|z) = N(g(z), sigma^2 I)
    z = torch.randn((batch, 3), generator=ctx.generator("prior_z"))
    x = g(z).detach()
    if observation_noise:
        x = x + SIGMA * torch.randn(x.shape, generator=ctx.generator("generated"))
    noise = ctx.generator("revised_x")
    for _ in range(3):
        x_var = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x_var).sum(), x_var)
        x = x - S_X**2 / 2 * grad + NOISE_X * torch.randn(x.shape, generator=noise)
    x_tilde = x.detach()
    # MCMC inference from z^ ~ q_phi(z|x) with eq. 21 on log p(z|x) = log p(x, z) + const
    mean, log_var = encoder.body(data_x).chunk(2, dim=1)
    z_hat = (mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=ctx.generator("inferred_z"))).detach()
    noise = ctx.generator("revised_z")
    for _ in range(3):
        z_var = z_hat.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_log_joint(g, data_x, z_var).sum(), z_var)
        z_hat = z_hat + S_Z**2 / 2 * grad + S_Z * torch.randn(z_hat.shape, generator=noise)
    z_tilde = z_hat.detach()
    # eq. 17 (f = -E), 18 and 19, as losses to minimize
    ebm = energy(data_x).mean() - energy(x_tilde).mean()
    generator_loss = -(_log_joint(g, data_x, z_tilde).mean() + _log_joint(g, x_tilde, z).mean())
    encoder_loss = -(_log_q(encoder, z_tilde, data_x).mean() + _log_q(encoder, z, x_tilde).mean())
    return {"energy_optimizer": _grad(ebm, energy), "generator_optimizer": _grad(generator_loss, g),
            "encoder_optimizer": _grad(encoder_loss, encoder)}, (g, z, energy)


def test_gradients_match_equations_17_to_19():
    captured, before, data_x, ctx = first_step("graphs/dual_mcmc.yaml", TINY)
    expected, _ = _hand_transcription(before, data_x, ctx)
    for name, grads in expected.items():
        assert len(grads) == len(captured[name])
        for got, want in zip(captured[name], grads):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=f"{name} gradient differs")


def test_golden_check_sees_the_initial_noise():
    """Power check: x-Langevin from the mean g(z) instead of a draw of p_theta(x|z) gives a different
    EBM gradient, which the test above would catch."""
    captured, before, data_x, ctx = first_step("graphs/dual_mcmc.yaml", TINY)
    expected, _ = _hand_transcription(before, data_x, ctx, observation_noise=False)
    assert not all(torch.allclose(got, want, rtol=1e-6, atol=1e-6)
                   for got, want in zip(captured["energy_optimizer"], expected["energy_optimizer"]))


def test_no_optimizer_receives_another_models_gradient():
    """The EBM loss on x~ would reach the generator if the kernel let gradients through g(z): the
    compiled step's generator gradient must hold its own losses' gradient only (checked above),
    and this leak must be real for that check to have teeth."""
    spec = load_graph("graphs/dual_mcmc.yaml", None, TINY)
    program = Program(spec)
    ctx = StepContext(spec.seed, 0, torch.device("cpu"))
    _, (g, z, energy) = _hand_transcription(program.models, program.nodes["data"](ctx)["x"], ctx)
    leaked = _grad(energy(g(z)).mean(), g)
    assert any(grad is not None and grad.abs().sum() > 0 for grad in leaked)
