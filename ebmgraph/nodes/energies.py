"""Energy model types: networks mapping a batch of samples to one scalar energy per sample."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.registry import MODELS, ModelType

Activation = Literal["swish", "leaky_relu", "elu", "relu"]


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (leaky ReLU has slope 0.2)."""
    modules = {"swish": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "relu": nn.ReLU}
    return modules[name]()


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """``layer`` with a spectral-norm parametrization of its weight if ``enabled``."""
    return _spectral_norm(layer) if enabled else layer


def check_image_size(type_name: str, input_shape: tuple[int, ...], stages: int) -> None:
    """ValueError unless ``input_shape`` is (C, H, W) with H and W at least 2**stages."""
    if len(input_shape) != 3:
        raise ValueError(f"{type_name} needs (C, H, W) images, found sample shape {tuple(input_shape)}")
    if min(input_shape[1:]) < 2 ** stages:
        raise ValueError(f"images of size {tuple(input_shape[1:])} are too small for "
                         f"{stages} 2x downsampling stages")


def image_size(type_name: str, input_shape: tuple[int, ...], stages: int) -> tuple[int, int, int]:
    """(C, H, W) of ``input_shape`` when H and W halve ``stages`` times exactly, else ValueError."""
    check_image_size(type_name, input_shape, stages)
    channels, height, width = input_shape
    if height % 2**stages or width % 2**stages:
        raise ValueError(f"images of size ({height}, {width}) do not halve {stages} times; change 'stages'")
    return channels, height, width


class EnergyNet(nn.Module):
    """Checks that samples have shape (B, *input_shape) and returns ``body``'s output as (B,)."""

    def __init__(self, input_shape: tuple[int, ...], body: nn.Module):
        super().__init__()
        self.input_shape = torch.Size(input_shape)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[1:] != self.input_shape:
            raise ValueError(f"expected samples of shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"found {tuple(x.shape)}")
        return self.body(x).squeeze(-1).float()  # fp32 energies under bf16 autocast


@attrs.define
class MLPEnergyConfig:
    hidden: int = 128
    layers: int = 3
    activation: Activation = "swish"
    spectral_norm: bool = False
    latent_dim: int | None = None

    def problems(self) -> list[tuple[str, str]]:
        return at_least_one(self, "hidden", "layers", "latent_dim")


@MODELS.register
class MLPEnergy(ModelType):
    """Fully connected energy for vector data: ``layers`` hidden layers of width ``hidden``, then a
    linear map to a scalar. Samples of other shapes are flattened. With ``latent_dim`` it is an
    energy on latent vectors of that size instead of on the data (a latent EBM prior, DAMC Table 1)."""

    type_name = "mlp_energy"
    role = "energy"
    Config = MLPEnergyConfig

    @classmethod
    def build(cls, config: MLPEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        input_shape = (config.latent_dim,) if config.latent_dim is not None else input_shape
        widths = [math.prod(input_shape)] + [config.hidden] * config.layers
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [maybe_spectral_norm(nn.Linear(width_in, width_out), config.spectral_norm),
                       activation(config.activation)]
        layers.append(maybe_spectral_norm(nn.Linear(widths[-1], 1), config.spectral_norm))
        return EnergyNet(input_shape, nn.Sequential(*layers))


def group_norm(width: int) -> nn.Module:
    """Group normalization with up to 32 groups (the largest divisor of ``width`` that is <= 32)."""
    return nn.GroupNorm(math.gcd(32, width), width)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: two 3x3 convs (each after optional group norm and the
    activation), with a 1x1 shortcut when widths differ. Without ``preactivate`` the first conv
    reads the input directly (SNGAN's first block, for a network without a stem)."""

    def __init__(self, width_in: int, width_out: int, act: str, sn: bool, norm: bool = False,
                 preactivate: bool = True):
        super().__init__()
        self.residual = nn.Sequential(
            *([group_norm(width_in)] if norm and preactivate else []), *([activation(act)] if preactivate else []),
            maybe_spectral_norm(nn.Conv2d(width_in, width_out, 3, padding=1), sn),
            *([group_norm(width_out)] if norm else []), activation(act),
            maybe_spectral_norm(nn.Conv2d(width_out, width_out, 3, padding=1), sn))
        self.shortcut = (nn.Identity() if width_in == width_out
                         else maybe_spectral_norm(nn.Conv2d(width_in, width_out, 1), sn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


class SelfAttention(nn.Module):
    """SAGAN self-attention over positions, ``x + gamma * attention(x)`` with gamma starting at 0
    (written with matmul and softmax so that samplers can differentiate it twice)."""

    def __init__(self, width: int, sn: bool):
        super().__init__()
        inner = max(width // 8, 1)
        self.query = maybe_spectral_norm(nn.Conv2d(width, inner, 1), sn)
        self.key = maybe_spectral_norm(nn.Conv2d(width, inner, 1), sn)
        self.value = maybe_spectral_norm(nn.Conv2d(width, width, 1), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x).flatten(2), self.key(x).flatten(2), self.value(x).flatten(2)
        weights = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
        return x + self.gamma * (v @ weights.transpose(1, 2)).view_as(x)


class SpatialPool(nn.Module):
    """Sums or averages (B, C, H, W) feature maps over positions to (B, C)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3)) if self.mode == "sum" else x.mean(dim=(2, 3))


@attrs.define
class ConvEnergyConfig:
    """``widths``: the width of each stage (default ``channels * 2**stage``); ``attention``: stages
    followed by a self-attention block; ``norm: group`` puts group norm in the residual blocks;
    ``pooling``: sum or mean over positions before the linear head; ``downsample``: the stages
    that end in 2x average pooling (default all); ``stem: false`` drops the 3x3 stem, so that the
    first residual block reads the image without a leading activation (SNGAN's first block)."""

    channels: int = 32
    stages: int = 2
    blocks_per_stage: int = 1
    activation: Activation = "leaky_relu"
    spectral_norm: bool = False
    widths: list[int] | None = None
    attention: list[int] = attrs.Factory(list)
    norm: Literal["none", "group"] = "none"
    pooling: Literal["sum", "mean"] = "sum"
    downsample: list[int] | None = None
    stem: bool = True

    def problems(self) -> list[tuple[str, str]]:
        out = at_least_one(self, "channels", "stages", "blocks_per_stage", "widths")
        if self.widths is not None and len(self.widths) != self.stages:
            out.append(("widths", f"give one width per stage ({self.stages}), found {len(self.widths)}"))
        for key in ("attention", "downsample"):
            stages = getattr(self, key) or []
            if any(not 0 <= stage < self.stages for stage in stages):
                out.append((key, f"stages are numbered 0 to {self.stages - 1}, found {stages}"))
        return out

    def stage_width(self, stage: int) -> int:
        return self.widths[stage] if self.widths is not None else self.channels * 2**stage

    def pools(self, stage: int) -> bool:
        """Whether ``stage`` ends in 2x average pooling."""
        return self.downsample is None or stage in self.downsample

    @property
    def downsamplings(self) -> int:
        """How many stages halve the resolution."""
        return sum(self.pools(stage) for stage in range(self.stages))


def conv_body(config: ConvEnergyConfig, in_channels: int, removed: int = 0) -> nn.Sequential:
    """Stem, the stages (residual blocks, 2x average pooling where the stage downsamples, then
    the optional attention) and the head (activation, pooling over positions, linear map to a
    scalar). The last block of a downsampling stage with its pooling is its "down-sampled
    residual block" (Improved CD Table 5's "ResBlock Down"); ``removed`` drops the first that many
    of them (appendix B.1's half- and quarter-resolution networks)."""
    sn, norm = config.spectral_norm, config.norm == "group"
    layers: list[nn.Module] = []
    width = in_channels
    if config.stem:
        layers.append(maybe_spectral_norm(nn.Conv2d(in_channels, config.channels, 3, padding=1), sn))
        width = config.channels
    for stage in range(config.stages):
        pool, blocks = config.pools(stage), config.blocks_per_stage
        if pool and removed > 0:
            pool, blocks, removed = False, blocks - 1, removed - 1
        for _ in range(blocks):
            layers.append(ResidualBlock(width, config.stage_width(stage), config.activation, sn, norm,
                                        preactivate=bool(layers)))
            width = config.stage_width(stage)
        if pool:
            layers.append(nn.AvgPool2d(2))
        if stage in config.attention:
            layers.append(SelfAttention(width, sn))
    layers += [activation(config.activation), SpatialPool(config.pooling), maybe_spectral_norm(nn.Linear(width, 1), sn)]
    return nn.Sequential(*layers)


@MODELS.register
class ConvEnergy(ModelType):
    """Convolutional ResNet energy for (C, H, W) images: a 3x3 stem of width ``channels`` (unless
    ``stem`` is false), then ``stages`` stages of ``blocks_per_stage`` residual blocks and 2x
    average pooling (width doubling each stage unless ``widths`` is given; only the
    ``downsample`` stages pool, when given), optional self-attention and group norm; the head
    applies the activation, pools over positions and maps to a scalar. No batch norm, since
    samplers differentiate through the network."""

    type_name = "conv_energy"
    role = "energy"
    Config = ConvEnergyConfig

    @classmethod
    def build(cls, config: ConvEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        check_image_size(cls.type_name, input_shape, config.downsamplings)
        return EnergyNet(input_shape, conv_body(config, input_shape[0]))
