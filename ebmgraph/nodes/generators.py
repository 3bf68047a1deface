"""Generator models p_theta(x, z) = N(x; g(z), sigma^2 I) N(z; 0, I), and the nodes that draw prior
latents and generate from them (Dual-MCMC, Cui & Han 2023, Section 3)."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import nn

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.energies import Activation, activation, group_norm, image_size
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
    """``widths``: the width of each hidden feature map, the first (the linear map of z) first
    (default ``channels`` doubled from the last map back to the first); ``block: residual``
    upsamples with residual blocks instead of 4x4 transposed convolutions; ``output_kernel``: a
    last stride-1 (transposed) convolution with this odd kernel maps the last hidden map to the
    image, so that every one of the ``stages`` upsamplings outputs a hidden map (without it the
    last upsampling outputs the image); ``norm: group`` puts group norm in the residual blocks."""

    latent_dim: int = 16
    channels: int = 64
    stages: int = 2
    sigma: float = 0.3
    activation: Activation = "leaky_relu"
    widths: list[int] | None = None
    block: Literal["deconv", "residual"] = "deconv"
    output_kernel: int | None = None
    norm: Literal["none", "group"] = "none"

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.sigma > 0 else [("sigma", f"must be > 0, found {self.sigma}")]
        out += at_least_one(self, "latent_dim", "channels", "stages", "widths")
        if self.widths is not None and len(self.widths) != self.hidden_maps:
            which = "each upsampling" if self.output_kernel else "each upsampling but the last"
            out.append(("widths", (f"give one width per hidden feature map ({self.hidden_maps}: the first map "
                                   f"and {which}), found {len(self.widths)}")))
        if self.output_kernel is not None and (self.output_kernel < 1 or self.output_kernel % 2 == 0):
            out.append(("output_kernel", f"must be an odd kernel size, found {self.output_kernel}"))
        if self.block == "residual" and self.output_kernel is None:
            out.append(("output_kernel", "residual upsampling needs an output convolution (e.g. output_kernel: 3)"))
        if self.norm != "none" and self.block != "residual":
            out.append(("norm", "group norm goes in residual blocks: set block: residual"))
        return out

    @property
    def hidden_maps(self) -> int:
        return self.stages + (self.output_kernel is not None)

    def hidden_widths(self) -> list[int]:
        n = self.hidden_maps
        return list(self.widths) if self.widths is not None else [self.channels * 2 ** (n - 1 - i) for i in range(n)]


class UpBlock(nn.Module):
    """Residual 2x upsampling block (SNGAN's generator block): optional group norm, activation,
    nearest 2x upsampling, 3x3 conv, optional group norm, activation, 3x3 conv; the shortcut is
    the upsampled input through a 1x1 conv."""

    def __init__(self, width_in: int, width_out: int, act: str, norm: bool):
        super().__init__()
        self.residual = nn.Sequential(
            *([group_norm(width_in)] if norm else []), activation(act), nn.Upsample(scale_factor=2),
            nn.Conv2d(width_in, width_out, 3, padding=1),
            *([group_norm(width_out)] if norm else []), activation(act), nn.Conv2d(width_out, width_out, 3, padding=1))
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(width_in, width_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


@MODELS.register
class DeconvGenerator(ModelType):
    """Deconvolutional generator for (C, H, W) images in [-1, 1]: a linear map of z to the first
    feature map (width ``widths[0]``, size H / 2^stages), then ``stages`` 2x upsamplings (4x4
    stride-2 transposed convolutions, or residual blocks with ``block: residual``), each after
    the activation, optionally an ``output_kernel`` convolution to the image, tanh output;
    gaussian observation noise ``sigma``. DAMC Table 2's CIFAR-10 generator is ``stages: 2``,
    ``widths: [1024, 512, 256]``, ``output_kernel: 3`` (its 8x8 ConvT of the 1x1 z is this linear
    map, with one bias per element instead of per channel)."""

    type_name = "deconv_generator"
    role = "generator"
    Config = DeconvGeneratorConfig

    @classmethod
    def build(cls, config: DeconvGeneratorConfig, input_shape: tuple[int, ...]) -> nn.Module:
        channels, height, width = image_size(cls.type_name, input_shape, config.stages)
        factor = 2**config.stages
        hidden = config.hidden_widths()
        widths = hidden if config.output_kernel is not None else hidden + [channels]
        layers: list[nn.Module] = [nn.Linear(config.latent_dim, widths[0] * (height // factor) * (width // factor)),
                                   nn.Unflatten(1, (widths[0], height // factor, width // factor))]
        for width_in, width_out in zip(widths, widths[1:]):
            if config.block == "residual":
                layers.append(UpBlock(width_in, width_out, config.activation, config.norm == "group"))
            else:
                layers += [activation(config.activation), nn.ConvTranspose2d(width_in, width_out, 4, 2, 1)]
        if config.output_kernel is not None:
            kernel = config.output_kernel
            output = (nn.Conv2d(widths[-1], channels, kernel, padding=kernel // 2) if config.block == "residual"
                      else nn.ConvTranspose2d(widths[-1], channels, kernel, 1, kernel // 2))
            layers += [*([group_norm(widths[-1])] if config.block == "residual" and config.norm == "group" else []),
                       activation(config.activation), output]
        layers.append(nn.Tanh())
        return GaussianGenerator(config.latent_dim, config.sigma, nn.Sequential(*layers))


@attrs.define
class MLPGeneratorConfig:
    latent_dim: int = 4
    hidden: int = 128
    layers: int = 3
    activation: Activation = "swish"
    sigma: float = 0.1

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.sigma > 0 else [("sigma", f"must be > 0, found {self.sigma}")]
        return out + at_least_one(self, "latent_dim", "hidden", "layers")


@MODELS.register
class MLPGenerator(ModelType):
    """Fully connected generator for vector data (2-D toys): ``layers`` hidden layers of width
    ``hidden`` from z to a linear output of the sample's shape (no squashing); gaussian
    observation noise ``sigma``."""

    type_name = "mlp_generator"
    role = "generator"
    Config = MLPGeneratorConfig

    @classmethod
    def build(cls, config: MLPGeneratorConfig, input_shape: tuple[int, ...]) -> nn.Module:
        widths = [config.latent_dim] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Linear(width_in, width_out), activation(config.activation)]
        layers += [nn.Linear(widths[-1], math.prod(input_shape)), nn.Unflatten(1, tuple(input_shape))]
        return GaussianGenerator(config.latent_dim, config.sigma, nn.Sequential(*layers))


def _latent_shape(node: Node, port: str) -> tuple[int, ...]:
    return tuple(node.models[port].latent_shape)


def generated_shape(node: Node, z: Value, port: str = "z") -> tuple[int, ...]:
    """The shape of g(z) for ``node``'s generator, or a ShapeError naming the latents' ``port``."""
    if z.shape[1:] != _latent_shape(node, "generator"):
        raise ShapeError(port, f"the generator takes latents of shape (B, {_latent_shape(node, 'generator')[0]})")
    return node.check_model_input("generator", port, z)


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
        return {"x": Value(SAMPLE, generated_shape(self, inputs["z"]))}

    def __call__(self, ctx, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.models["generator"](z)}


@NODES.register
class GeneratorSample(NoiseSource):
    """x ~ p_theta(x | z) = N(g(z), sigma^2 I): a draw from the generator's observation model, with
    its noise (Dual-MCMC eq. 20 starts x-Langevin from such draws; ``generate`` gives the mean g(z))."""

    type_name = "generator_sample"
    inputs = (Port("generator", model_ref("generator"), "the generator p_theta(x | z)"),
              Port("z", SAMPLE, "latents"))
    outputs = (Port("x", SAMPLE, "draws g(z) + sigma * noise (constants for parameter learning)", stop_gradient=True),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"x": Value(SAMPLE, generated_shape(self, inputs["z"]))}

    def __call__(self, ctx, z: torch.Tensor) -> dict[str, torch.Tensor]:
        generator = self.models["generator"]
        with torch.no_grad():
            mean = generator(z)
        return {"x": mean + generator.sigma * torch.randn(mean.shape, generator=ctx.generator(self.name),
                                                          device=mean.device)}
