"""Golden test: the compiled damc_lebm step's gradients equal a hand transcription of Yu et al.
(2023), supplementary Listings 1-2, eq. 3 and eq. 7, on tiny models with fixed seeds."""

import math

import torch

from captured_gradients import first_step

TINY = ("data.batch_size=4", "models.generator.channels=4", "models.generator.latent_dim=3",
        "models.energy.latent_dim=3", "models.energy.hidden=8",
        "models.amortizer.latent_dim=3", "models.amortizer.steps=4", "models.amortizer.widths=[8,8]",
        "models.amortizer.time_embedding=8", "models.amortizer.context_embedding=4",
        "models.amortizer.context_channels=4", "models.amortizer.context_stages=1",
        "nodes.posterior.steps=3", "nodes.prior.steps=3", "train.progress=false")
S_POSTERIOR, S_PRIOR, SIGMA, STEPS, LOG_SNR_MIN, LOG_SNR_MAX, M = 0.1, 0.4, 0.3, 4, -5.1, 9.8, 6


def _log_snr(u):
    """The cosine log-SNR schedule from LOG_SNR_MAX at u = 0 to LOG_SNR_MIN at u = 1."""
    b = math.atan(math.exp(-0.5 * LOG_SNR_MAX))
    a = math.atan(math.exp(-0.5 * LOG_SNR_MIN)) - b
    return -2 * torch.log(torch.tan(a * torch.as_tensor(u, dtype=torch.float32) + b))


def _alpha_sigma(log_snr):
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


def _q_sample(q, x, generator):
    """z0 = Q(x): DDPM ancestral sampling with the z0-prediction and the posterior q(z_s | z_t, z0)."""
    context = q.encoder(x)
    z = torch.randn((len(x), 3), generator=generator)
    for i in reversed(range(STEPS)):
        lam_t = _log_snr(i / (STEPS - 1))
        alpha_t, sigma_t = _alpha_sigma(lam_t)
        z0 = (z - sigma_t * q.predictor(z, lam_t.expand(len(x)), context)) / alpha_t
        if i == 0:
            return z0
        lam_s = _log_snr((i - 1) / (STEPS - 1))
        alpha_s, sigma_s = _alpha_sigma(lam_s)
        r = torch.exp(lam_t - lam_s)
        mean = r * alpha_s / alpha_t * z + (1 - r) * alpha_s * z0
        z = mean + ((1 - r) * sigma_s**2).sqrt() * torch.randn(z.shape, generator=generator)


def _langevin(z, energy, generator, s, steps=3):
    """Listing 1: z <- z - s^2/2 grad U(z) + s w."""
    for _ in range(steps):
        z_var = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(z_var).sum(), z_var)
        z = (z - 0.5 * s**2 * grad + s * torch.randn(z.shape, generator=generator)).detach()
    return z


def _hand_transcription(models, x, ctx, fresh_chains=True, mask_once=True):
    q, target, g, e = models["amortizer"], models["target"], models["generator"], models["energy"]
    with torch.no_grad():
        z0 = _q_sample(target, x, ctx.generator("initial"))
    # eq. 7: posterior on ||x - g(z)||^2 / (2 sigma^2) + E(z) + ||z||^2 / 2; prior on E(z) + ||z||^2 / 2
    z_pos = _langevin(z0, lambda z: ((x - g(z)) ** 2).sum((1, 2, 3)) / (2 * SIGMA**2) + e(z) + 0.5 * (z**2).sum(1),
                      ctx.generator("posterior"), S_POSTERIOR)
    fresh = torch.randn(z0.shape, generator=ctx.generator("fresh"))
    z_neg = _langevin(torch.cat([z0, fresh]) if fresh_chains else z0, lambda z: e(z) + 0.5 * (z**2).sum(1), ctx.generator("prior"),
                      S_PRIOR)
    # Listing 2: the 20% mask is drawn once per batch, before the M fits of Q
    keep = (torch.rand(len(x), generator=ctx.generator("mask")) >= 0.2).float()
    # eq. 3 as computed in the last of the M repetitions (fresh u and eps in each)
    ctx.repeat = M - 1
    generator = ctx.generator("amortizer_fit")
    if not mask_once:
        keep = (torch.rand(len(x), generator=ctx.generator("mask")) >= 0.2).float()
    u = torch.rand(len(x), generator=generator)
    eps = torch.randn(z_pos.shape, generator=generator)
    lam = _log_snr(u)
    alpha, sigma = _alpha_sigma(lam[:, None])
    eps_hat = q.predictor(alpha * z_pos + sigma * eps, lam, q.encoder(x) * keep[:, None])
    q_loss = (0.5 * ((eps - eps_hat) ** 2).sum(1)).mean()
    g_loss = ((g(z_pos) - x) ** 2).sum((1, 2, 3)).mean()  # Listing 2; the graph: weight 2 sigma^2 on -log p
    e_loss = e(z_pos).mean() - e(z_neg).mean()
    return {name: torch.autograd.grad(loss, list(model.parameters()))
            for name, loss, model in (("amortizer_optimizer", q_loss, q), ("generator_optimizer", g_loss, g),
                                      ("energy_optimizer", e_loss, e))}


def _step_and_transcription(**variant):
    captured, before, data_x, ctx = first_step("graphs/damc_lebm.yaml", TINY)
    return captured, _hand_transcription(before, data_x, ctx, **variant)


def test_gradients_match_listing_2():
    captured, expected = _step_and_transcription()
    for name, grads in expected.items():
        assert len(grads) == len(captured[name])
        for got, want in zip(captured[name], grads):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name} gradient differs")


def test_golden_check_has_teeth():
    """Power check: prior chains without Listing 2's noise-initialized half give a different energy
    gradient, which the test above would catch."""
    captured, expected = _step_and_transcription(fresh_chains=False)
    assert not all(torch.allclose(got, want, rtol=1e-5, atol=1e-6)
                   for got, want in zip(captured["energy_optimizer"], expected["energy_optimizer"]))


def test_golden_check_sees_the_mask_placement():
    """Power check: a mask redrawn in every repetition (not Listing 2's one per batch) gives a
    different amortizer gradient."""
    captured, expected = _step_and_transcription(mask_once=False)
    assert not all(torch.allclose(got, want, rtol=1e-5, atol=1e-6)
                   for got, want in zip(captured["amortizer_optimizer"], expected["amortizer_optimizer"]))
