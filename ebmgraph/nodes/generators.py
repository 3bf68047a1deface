"""Generator models p_theta(x, z) = N(x; g(z), sigma^2 I) N(z; 0, I), and the nodes that draw prior
latents and generate from them (Dual-MCMC, Cui & Han 2023, Section 3)."""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from ebmgraph.nodes.energies import Activation, activation, image_size
from ebmgraph.nodes.ports import SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import ModelCall, NoiseSource
from ebmgraph.nodes.registry import MODELS, NODES, ModelType, Node

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per sample."""
    flat = z.flatten(1)
    return -0.5 * (flat.pow(2).sum(1) + flat.shape[1] * LOG_2PI)


class GaussianGenerator(nn.Module):
    """``forward(z)`` is the mean g(z); ``log_joint(x, z, mask)`` is log p(x|z) + log p(z) per sample,
    with only the pixels where ``mask`` is 1 observed (inpainting)."""

    def __init__(self, latent_dim: int, sigma: float, body: nn.Module):
        super().__init__()
        self.latent_shape = (latent_dim,)
        self.sigma = sigma
        self.body = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"expected latents of shape (B, {self.latent_shape[0]}), found {tuple(z.shape)}")
        return self.body(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """log N(x; g(z), sigma^2 I) per sample, over the observed pixels."""
        squared = (x - self(z)).pow(2)
        observed = torch.ones_like(squared) if mask is None else mask.expand_as(squared)
        squared = (squared * observed).flatten(1).sum(1)
        count = observed.flatten(1).sum(1)
        return -squared / (2 * self.sigma**2) - 0.5 * count * (LOG_2PI + 2 * math.log(self.sigma))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_likelihood(x, z, mask) + standard_normal_log_density(z)


@attrs.define
class DeconvGeneratorConfig:
    latent_dim: int = 16
    channels: int = 64
    stages: int = 2
    sigma: float = 0.3
    activation: Activation = "leaky_relu"

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.sigma > 0 else [("sigma", f"must be > 0, found {self.sigma}")]


@MODELS.register
class DeconvGenerator(ModelType):
    """Deconvolutional generator for (C, H, W) images in [-1, 1]: a linear map of z to
    (channels * 2^(stages-1), H / 2^stages, W / 2^stages), then ``stages`` 4x4 transposed
    convolutions doubling the resolution, tanh output; gaussian observation noise ``sigma``."""

    type_name = "deconv_generator"
    role = "generator"
    Config = DeconvGeneratorConfig

    @classmethod
    def build(cls, config: DeconvGeneratorConfig, input_shape: tuple[int, ...]) -> nn.Module:
        channels, height, width = image_size(cls.type_name, input_shape, config.stages)
        factor = 2**config.stages
        widths = [config.channels * 2 ** (config.stages - 1 - i) for i in range(config.stages)] + [channels]
        layers: list[nn.Module] = [nn.Linear(config.latent_dim, widths[0] * (height // factor) * (width // factor)),
                                   nn.Unflatten(1, (widths[0], height // factor, width // factor))]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [activation(config.activation), nn.ConvTranspose2d(width_in, width_out, 4, 2, 1)]
        layers.append(nn.Tanh())
        return GaussianGenerator(config.latent_dim, config.sigma, nn.Sequential(*layers))


def _latent_shape(node: Node, port: str) -> tuple[int, ...]:
    return tuple(node.models[port].latent_shape)


@attrs.define
class PriorLatentConfig:
    batch_size: int | None = None


@NODES.register
class PriorLatent(NoiseSource):
    """z ~ N(0, I) in the latent space of ``generator``, one per sample of ``like`` (or ``batch_size``)."""

    type_name = "prior_latent"
    Config = PriorLatentConfig
    inputs = (Port("generator", model_ref("generator"), "the generator whose latent space is sampled"),
              Port("like", SAMPLE, "a sample giving the batch size"))
    outputs = (Port("z", SAMPLE, "latents from the prior N(0, I)"),)

    def _shape(self, like_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.config.batch_size or like_shape[0], *_latent_shape(self, "generator"))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"z": Value(SAMPLE, self._shape(inputs["like"].shape))}

    def __call__(self, ctx, like: torch.Tensor) -> dict[str, torch.Tensor]:
        shape = self._shape(tuple(like.shape))
        return {"z": torch.randn(shape, generator=ctx.generator(self.name), device=like.device)}


@NODES.register
class Generate(ModelCall):
    """x = g(z): the generator's mean image for each latent (differentiable in the generator's
    parameters; a kernel started from it treats it as a constant)."""

    type_name = "generate"
    inputs = (Port("generator", model_ref("generator"), "the generator g"),
              Port("z", SAMPLE, "latents"))
    outputs = (Port("x", SAMPLE, "generated samples g(z)"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        if inputs["z"].shape[1:] != _latent_shape(self, "generator"):
            raise ShapeError("z", f"the generator takes latents of shape (B, {_latent_shape(self, 'generator')[0]})")
        return {"x": Value(SAMPLE, self.check_model_input("generator", "z", inputs["z"]))}

    def __call__(self, ctx, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.models["generator"](z)}
