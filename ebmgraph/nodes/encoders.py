"""Inference models q_phi(z|x) = N(z; mu(x), diag sigma^2(x)) (Dual-MCMC, Cui & Han 2023), and the
node that encodes samples."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.energies import Activation, activation, image_size
from ebmgraph.nodes.generators import LOG_2PI
from ebmgraph.nodes.ports import SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.node import ModelCall
from ebmgraph.nodes.registry import MODELS, NODES, ModelType


class GaussianEncoder(nn.Module):
    """``forward(x)`` gives (mean, log variance) of q(z|x); ``log_prob(z, x)`` is log q(z|x) per sample."""

    def __init__(self, latent_dim: int, body: nn.Module):
        super().__init__()
        self.latent_shape = (latent_dim,)
        self.body = body

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.body(x).chunk(2, dim=1)
        return mean, log_variance

    def log_prob(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean, log_variance = self(x)
        return -0.5 * ((z - mean).pow(2) / log_variance.exp() + log_variance + LOG_2PI).sum(1)


@attrs.define
class ConvEncoderConfig:
    """``stem: true`` starts with a 3x3 stride-1 convolution to ``channels``, so that the
    stride-2 stages double the width from there."""

    latent_dim: int = 16
    channels: int = 32
    stages: int = 2
    activation: Activation = "leaky_relu"
    stem: bool = False

    def problems(self) -> list[tuple[str, str]]:
        return at_least_one(self, "latent_dim", "channels", "stages")


@MODELS.register
class ConvEncoder(ModelType):
    """Convolutional gaussian inference model for (C, H, W) images: optionally a 3x3 stem of width
    ``channels``, then ``stages`` 4x4 stride-2 convolutions doubling the width (from ``channels``,
    or from its double after a stem), each followed by the activation, then a linear map to the
    mean and log variance of z (``latent_dim`` each; the same as a convolution over the whole
    last map)."""

    type_name = "conv_encoder"
    role = "encoder"
    Config = ConvEncoderConfig

    @classmethod
    def build(cls, config: ConvEncoderConfig, input_shape: tuple[int, ...]) -> nn.Module:
        channels, height, width = image_size(cls.type_name, input_shape, config.stages)
        factor = 2**config.stages
        layers: list[nn.Module] = []
        if config.stem:
            layers += [nn.Conv2d(channels, config.channels, 3, 1, 1), activation(config.activation)]
            widths = [config.channels * 2**i for i in range(config.stages + 1)]
        else:
            widths = [channels] + [config.channels * 2**i for i in range(config.stages)]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(width_in, width_out, 4, 2, 1), activation(config.activation)]
        layers += [nn.Flatten(), nn.Linear(widths[-1] * (height // factor) * (width // factor), 2 * config.latent_dim)]
        return GaussianEncoder(config.latent_dim, nn.Sequential(*layers))


@NODES.register
class Encode(ModelCall):
    """z ~ q(z|x) by reparameterization (``z``) and the mean of q (``mean``)."""

    type_name = "encode"
    inputs = (Port("encoder", model_ref("encoder"), "the inference model q(z|x)"),
              Port("x", SAMPLE, "samples to encode"))
    outputs = (Port("z", SAMPLE, "a draw from q(z|x)"), Port("mean", SAMPLE, "the mean of q(z|x)"))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        batch = inputs["x"].shape[0]
        self.check_model_input("encoder", "x", inputs["x"])
        shape = (batch, *self.models["encoder"].latent_shape)
        return {"z": Value(SAMPLE, shape), "mean": Value(SAMPLE, shape)}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, log_variance = self.models["encoder"](x)
        noise = torch.randn(mean.shape, generator=ctx.generator(self.name), device=mean.device)
        return {"z": mean + (0.5 * log_variance).exp() * noise, "mean": mean}
