"""Energy model types: networks mapping a batch of samples to one scalar energy per sample."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ebmgraph.nodes.registry import MODELS, ModelType

Activation = Literal["swish", "leaky_relu", "elu", "relu"]


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (leaky ReLU has slope 0.2)."""
    modules = {"swish": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "relu": nn.ReLU}
    return modules[name]()


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    """``layer`` with a spectral-norm parametrization of its weight if ``enabled``."""
    return _spectral_norm(layer) if enabled else layer


def image_size(type_name: str, input_shape: tuple[int, ...], stages: int) -> tuple[int, int, int]:
    """(C, H, W) of ``input_shape`` when H and W halve ``stages`` times exactly, else ValueError."""
    if len(input_shape) != 3:
        raise ValueError(f"{type_name} needs (C, H, W) images, found sample shape {tuple(input_shape)}")
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
        return self.body(x).squeeze(-1)


@attrs.define
class MLPEnergyConfig:
    hidden: int = 128
    layers: int = 3
    activation: Activation = "swish"
    spectral_norm: bool = False


@MODELS.register
class MLPEnergy(ModelType):
    """Fully connected energy for vector data: ``layers`` hidden layers of width ``hidden``, then a
    linear map to a scalar. Samples of other shapes are flattened."""

    type_name = "mlp_energy"
    role = "energy"
    Config = MLPEnergyConfig

    @classmethod
    def build(cls, config: MLPEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        widths = [math.prod(input_shape)] + [config.hidden] * config.layers
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [maybe_spectral_norm(nn.Linear(width_in, width_out), config.spectral_norm),
                       activation(config.activation)]
        layers.append(maybe_spectral_norm(nn.Linear(widths[-1], 1), config.spectral_norm))
        return EnergyNet(input_shape, nn.Sequential(*layers))


class ResidualBlock(nn.Module):
    """Pre-activation residual block: two 3x3 convs, with a 1x1 shortcut when widths differ."""

    def __init__(self, width_in: int, width_out: int, act: str, sn: bool):
        super().__init__()
        self.residual = nn.Sequential(
            activation(act), maybe_spectral_norm(nn.Conv2d(width_in, width_out, 3, padding=1), sn),
            activation(act), maybe_spectral_norm(nn.Conv2d(width_out, width_out, 3, padding=1), sn))
        self.shortcut = (nn.Identity() if width_in == width_out
                         else maybe_spectral_norm(nn.Conv2d(width_in, width_out, 1), sn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


class SpatialSum(nn.Module):
    """Sums (B, C, H, W) feature maps over positions to (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


@attrs.define
class ConvEnergyConfig:
    channels: int = 32
    stages: int = 2
    blocks_per_stage: int = 1
    activation: Activation = "leaky_relu"
    spectral_norm: bool = False


@MODELS.register
class ConvEnergy(ModelType):
    """Convolutional ResNet energy for (C, H, W) images: a 3x3 stem of width ``channels``, then
    ``stages`` stages of ``blocks_per_stage`` residual blocks and 2x average pooling, doubling the
    width each stage; the head applies the activation, sums over positions and maps to a scalar.
    No batch norm, since samplers differentiate through the network."""

    type_name = "conv_energy"
    role = "energy"
    Config = ConvEnergyConfig

    @classmethod
    def build(cls, config: ConvEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        if len(input_shape) != 3:
            raise ValueError(f"conv_energy needs (C, H, W) images, found sample shape {tuple(input_shape)}")
        if min(input_shape[1:]) < 2 ** config.stages:
            raise ValueError(f"images of size {tuple(input_shape[1:])} are too small for "
                             f"{config.stages} 2x downsampling stages")
        sn = config.spectral_norm
        layers: list[nn.Module] = [maybe_spectral_norm(nn.Conv2d(input_shape[0], config.channels, 3, padding=1), sn)]
        width = config.channels
        for stage in range(config.stages):
            stage_width = config.channels * 2 ** stage
            for _ in range(config.blocks_per_stage):
                layers.append(ResidualBlock(width, stage_width, config.activation, sn))
                width = stage_width
            layers.append(nn.AvgPool2d(2))
        layers += [activation(config.activation), SpatialSum(), maybe_spectral_norm(nn.Linear(width, 1), sn)]
        return EnergyNet(input_shape, nn.Sequential(*layers))
