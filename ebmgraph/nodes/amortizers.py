"""Diffusion amortizers q_phi(z | x): a small DDPM on latent vectors, conditioned on an embedding of
the observation, that learns to reproduce the output of MCMC chains (DAMC, Yu et al. 2023,
supplementary eq. 2-4 and Table 3). Zeroing the embedding gives the unconditional q_phi(z)."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import nn

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.diffusions import (
    LogSNRSchedule, clean_from_noise, forward_marginal, reverse_posterior, signal_and_noise_scales)
from ebmgraph.nodes.energies import image_size
from ebmgraph.nodes.registry import MODELS, ModelType


def sinusoidal_embedding(time: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer position features of a time in [0, 1]: sin and cos at ``dim / 2`` geometric
    frequencies (time scaled to [0, 1000] as in DDPM)."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, device=time.device) * (-math.log(10000.0) / max(half - 1, 1)))
    angles = 1000.0 * time[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class FourierFeatures(nn.Module):
    """[sin(2π zB), cos(2π zB), z] with a learned B of shape (D, D // 2): 2D features for even D."""

    def __init__(self, dim: int):
        super().__init__()
        self.projection = nn.Parameter(torch.randn(dim, dim // 2))
        self.out_features = 2 * (dim // 2) + dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * z @ self.projection
        return torch.cat([angles.sin(), angles.cos(), z], dim=1)


class ConditionedBlock(nn.Module):
    """Table 3's basic block: a linear map of the input, scaled and shifted by a linear map of the
    merged (context, time) embedding, plus a linear skip connection from the input. With
    ``project``, the SiLU of the merged embedding first goes through Linear and SiLU to the
    block's width (Table 3's "Linear, SiLU | nout" row)."""

    def __init__(self, width_in: int, width_out: int, condition_dim: int, project: bool = False):
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)
        hidden = [nn.Linear(condition_dim, width_out), nn.SiLU()] if project else []
        self.scale_shift = nn.Sequential(nn.SiLU(), *hidden, nn.Linear(width_out if project else condition_dim,
                                                                       2 * width_out))
        self.skip = nn.Linear(width_in, width_out)

    def zero_output(self) -> None:
        """Zero the layers that make the output, so that the block starts at 0 (its projection
        of the condition keeps its initialization and so its gradient)."""
        for layer in (self.linear, self.skip, self.scale_shift[-1]):
            for parameter in layer.parameters():
                nn.init.zeros_(parameter)

    def forward(self, h: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift(condition).chunk(2, dim=1)
        return self.linear(h) * (1 + scale) + shift + self.skip(h)


class NoisePredictor(nn.Module):
    """ε_phi(z_λ, λ, context) = σ_λ z_λ + U(z_λ, λ, context): U is an MLP U-Net of conditioned blocks
    (encoder ``widths``, a middle block, a decoder that concatenates the encoder's activations) on
    Fourier features of z_λ, with a sinusoidal embedding of the schedule time of λ. σ_λ z_λ is the
    exact ε-predictor of N(0, I) latents and U's last block starts at zero, so an untrained
    amortizer draws from N(0, I), the latent EBM's base distribution."""

    def __init__(self, latent_dim: int, context_dim: int, widths: list[int], time_dim: int, project: bool = False):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.features = FourierFeatures(latent_dim)
        condition = context_dim + time_dim
        encoder_widths = [self.features.out_features] + list(widths)
        self.down = nn.ModuleList(ConditionedBlock(a, b, condition, project)
                                  for a, b in zip(encoder_widths, encoder_widths[1:]))
        self.middle = ConditionedBlock(widths[-1], widths[-1], condition, project)
        decoder_widths = list(reversed(widths[:-1])) + [latent_dim]
        inputs = [widths[-1]] + decoder_widths[:-1]
        self.up = nn.ModuleList(ConditionedBlock(a + skip, b, condition, project)
                                for a, skip, b in zip(inputs, reversed(widths), decoder_widths))
        self.activation = nn.SiLU()
        self.up[-1].zero_output()

    def forward(self, z: torch.Tensor, log_snr: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        time = torch.atan(torch.exp(-0.5 * log_snr.clamp(-20, 20))) / (0.5 * math.pi)
        condition = torch.cat([context, self.time(sinusoidal_embedding(time, self.time_dim))], dim=1)
        h, skips = self.features(z), []
        for block in self.down:
            h = block(h, condition)
            skips.append(h)
            h = self.activation(h)
        h = self.middle(h, condition)
        for block in self.up:
            h = block(self.activation(torch.cat([h, skips.pop()], dim=1)), condition)
        return signal_and_noise_scales(log_snr)[1][:, None].to(z.dtype) * z + h


def context_encoder(input_shape: tuple[int, ...], channels: int, stages: int, embedding: int,
                    head: str = "linear") -> nn.Module:
    """Table 4's observation embedding: for (C, H, W) images a 3x3 convolution then ``stages`` 4x4
    stride-2 convolutions doubling the width, each with instance norm and leaky ReLU, then a
    linear map to ``embedding`` (``head: linear``) or Table 4's last row (``head: conv``): a
    convolution over the whole last map to ``embedding`` channels, norm and leaky ReLU. Instance
    norm of that 1x1 map would output only its shift (PyTorch refuses it in training), so its
    norm is over the channels (layer norm, the same 2 * embedding parameters). For vectors a
    two-layer MLP."""
    if len(input_shape) != 3:
        width = math.prod(input_shape)
        return nn.Sequential(nn.Flatten(), nn.Linear(width, channels), nn.LeakyReLU(0.2), nn.Linear(channels, embedding))
    in_channels, height, width = image_size("diffusion_amortizer", input_shape, stages)
    widths = [channels * 2**i for i in range(stages + 1)]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1), nn.InstanceNorm2d(widths[0], affine=True),
                               nn.LeakyReLU(0.2)]
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(width_in, width_out, 4, 2, 1), nn.InstanceNorm2d(width_out, affine=True),
                   nn.LeakyReLU(0.2)]
    last = (height // 2**stages, width // 2**stages)
    if head == "conv":
        layers += [nn.Conv2d(widths[-1], embedding, last), nn.GroupNorm(1, embedding), nn.LeakyReLU(0.2), nn.Flatten()]
    else:
        layers += [nn.Flatten(), nn.Linear(widths[-1] * last[0] * last[1], embedding)]
    return nn.Sequential(*layers)


class DiffusionAmortizer(nn.Module):
    """q_phi(z | x) as a DDPM on z: ``denoising_loss`` is eq. 3's ε-prediction loss, ``sample`` the
    ancestral sampler over ``steps`` times of the log-SNR schedule."""

    def __init__(self, latent_dim: int, steps: int, schedule: LogSNRSchedule, encoder: nn.Module,
                 context_dim: int, predictor: NoisePredictor):
        super().__init__()
        self.latent_shape = (latent_dim,)
        self.steps = steps
        self.schedule = schedule
        self.context_dim = context_dim
        self.encoder = encoder
        self.predictor = predictor

    def context(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The embedding of ``x`` (rows where ``keep`` is 0 zeroed: the unconditional model)."""
        embedding = self.encoder(x)
        return embedding if keep is None else embedding * keep[:, None]

    def unconditional_context(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(n, self.context_dim, device=device)

    def denoising_loss(self, z0: torch.Tensor, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """½ ||ε_phi(α_λ z_0 + σ_λ ε, λ, context) - ε||² per sample, λ = λ(u), u ~ U(0, 1), ε ~ N(0, I)."""
        u = torch.rand(z0.shape[0], generator=generator, device=z0.device)
        noise = torch.randn(z0.shape, generator=generator, device=z0.device)
        log_snr = self.schedule.log_snr(u)
        mean, std = forward_marginal(z0, log_snr[:, None])
        predicted = self.predictor(mean + std * noise, log_snr, context)
        return 0.5 * (predicted - noise).pow(2).sum(1)

    def sample(self, context: torch.Tensor, generator: torch.Generator, noise: bool = True) -> torch.Tensor:
        """Ancestral sampling from z ~ N(0, I) at u = 1 through u_i = i / (steps - 1): each step
        predicts z_0 from ε_phi and moves to q(z_s | z_t, z_0) (its mean only when ``noise`` is
        false); the last step returns the z_0 prediction."""
        n, device = context.shape[0], context.device
        log_snrs = self.schedule.log_snr(torch.linspace(0.0, 1.0, self.steps, device=device, dtype=context.dtype))
        z = torch.randn((n, *self.latent_shape), generator=generator, device=device, dtype=context.dtype)
        for i in reversed(range(1, self.steps)):
            mean, std = reverse_posterior(z, self.predict_clean(z, log_snrs[i], context), log_snrs[i - 1], log_snrs[i])
            z = mean + std * torch.randn(z.shape, generator=generator, device=device, dtype=z.dtype) if noise else mean
        return self.predict_clean(z, log_snrs[0], context)

    def predict_clean(self, z: torch.Tensor, log_snr: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The z_0 prediction from ε_phi at one log-SNR (a 0-d tensor) for the whole batch."""
        return clean_from_noise(z, self.predictor(z, log_snr.expand(z.shape[0]), context), log_snr)


@attrs.define
class DiffusionAmortizerConfig:
    latent_dim: int = 16
    steps: int = 100
    log_snr_min: float = -5.1
    log_snr_max: float = 9.8
    widths: list[int] = attrs.Factory(lambda: [128, 256, 256])
    time_embedding: int = 128
    context_embedding: int = 128
    context_channels: int = 32
    context_stages: int = 2
    context_head: Literal["linear", "conv"] = "linear"
    project_condition: bool = False

    def problems(self) -> list[tuple[str, str]]:
        out = at_least_one(self, "latent_dim", "steps", "widths", "time_embedding", "context_embedding",
                           "context_channels", "context_stages")
        if self.log_snr_min >= self.log_snr_max:
            out.append(("log_snr_min", f"must be below log_snr_max ({self.log_snr_max}), found {self.log_snr_min}"))
        if not self.widths:
            out.append(("widths", "give at least one width"))
        return out


@MODELS.register
class DiffusionAmortizerType(ModelType):
    """DDPM amortizer on latents of size ``latent_dim`` conditioned on the observation (DAMC): ``steps``
    sampling steps on the cosine log-SNR schedule from ``log_snr_max`` to ``log_snr_min``; an
    MLP U-Net noise predictor with encoder ``widths`` (``project_condition``: Table 3's projection
    of the merged embedding in every block); the observation embedded to ``context_embedding``
    features (images: instance-normed convolutions from ``context_channels`` over
    ``context_stages`` stride-2 stages, then a linear map or, with ``context_head: conv``, Table
    4's Conv-Norm-LReLU). DAMC's CIFAR-10 Q is ``context_channels: 64`` (nif),
    ``context_stages: 3``, ``context_embedding: 1024`` (nemb), ``context_head: conv``,
    ``project_condition: true``."""

    type_name = "diffusion_amortizer"
    role = "amortizer"
    Config = DiffusionAmortizerConfig

    @classmethod
    def build(cls, config: DiffusionAmortizerConfig, input_shape: tuple[int, ...]) -> nn.Module:
        encoder = context_encoder(input_shape, config.context_channels, config.context_stages,
                                  config.context_embedding, config.context_head)
        predictor = NoisePredictor(config.latent_dim, config.context_embedding, list(config.widths),
                                   config.time_embedding, config.project_condition)
        schedule = LogSNRSchedule(config.log_snr_min, config.log_snr_max)
        return DiffusionAmortizer(config.latent_dim, config.steps, schedule, encoder, config.context_embedding,
                                  predictor)
