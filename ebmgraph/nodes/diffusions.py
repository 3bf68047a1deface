"""The variance-preserving gaussian diffusion in log-SNR form (DAMC supplementary eq. 3:
q(z_λ | z_0) = N(α_λ z_0, σ_λ² I) with α_λ² = sigmoid(λ), σ_λ² = sigmoid(-λ), λ = log α²/σ²).

Time u in [0, 1] maps to λ by the cosine schedule λ(u) = -2 log tan(a u + b), from λ_max at u = 0
(almost clean) to λ_min at u = 1 (almost pure noise). Every function takes log-SNRs shaped to
broadcast against the states (e.g. (B, 1) for (B, D) latents)."""

from __future__ import annotations

import math

import attrs
import torch


@attrs.frozen
class LogSNRSchedule:
    """λ(u) = -2 log tan(a u + b) with λ(0) = ``maximum`` and λ(1) = ``minimum``."""

    minimum: float = -5.1
    maximum: float = 9.8

    def log_snr(self, u: torch.Tensor) -> torch.Tensor:
        b = math.atan(math.exp(-0.5 * self.maximum))
        a = math.atan(math.exp(-0.5 * self.minimum)) - b
        return -2.0 * torch.log(torch.tan(a * u + b))


def signal_and_noise_scales(log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_λ, σ_λ) with α² + σ² = 1 and α² / σ² = exp(λ)."""
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


def forward_marginal(z0: torch.Tensor, log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of q(z_λ | z_0) = N(α_λ z_0, σ_λ² I)."""
    alpha, sigma = signal_and_noise_scales(log_snr)
    return alpha * z0, sigma.expand_as(z0)


def forward_transition(z_s: torch.Tensor, log_snr_s: torch.Tensor, log_snr_t: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of one noising step q(z_t | z_s) for λ_t < λ_s:
    N(α_t/α_s z_s, σ_t² (1 - exp(λ_t - λ_s)) I), the step whose composition gives ``forward_marginal``."""
    alpha_s, _ = signal_and_noise_scales(log_snr_s)
    alpha_t, sigma_t = signal_and_noise_scales(log_snr_t)
    variance = -torch.expm1(log_snr_t - log_snr_s) * sigma_t.pow(2)
    return alpha_t / alpha_s * z_s, variance.sqrt().expand_as(z_s)


def reverse_posterior(z_t: torch.Tensor, z0: torch.Tensor, log_snr_s: torch.Tensor, log_snr_t: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of q(z_s | z_t, z_0) for λ_s > λ_t, with r = exp(λ_t - λ_s):
    N(r α_s/α_t z_t + (1 - r) α_s z_0, (1 - r) σ_s² I), the DDPM reverse step given a z_0 prediction."""
    alpha_s, sigma_s = signal_and_noise_scales(log_snr_s)
    alpha_t, _ = signal_and_noise_scales(log_snr_t)
    ratio = torch.exp(log_snr_t - log_snr_s)
    one_minus_ratio = -torch.expm1(log_snr_t - log_snr_s)
    mean = ratio * alpha_s / alpha_t * z_t + one_minus_ratio * alpha_s * z0
    return mean, (one_minus_ratio * sigma_s.pow(2)).sqrt().expand_as(z_t)


def clean_from_noise(z_t: torch.Tensor, noise: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """The z_0 for which z_t = α z_0 + σ ε: (z_t - σ ε) / α (an ε-prediction turned into a z_0-prediction)."""
    alpha, sigma = signal_and_noise_scales(log_snr)
    return (z_t - sigma * noise) / alpha
