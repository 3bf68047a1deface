"""Noise sources: batches of uniform or gaussian noise shaped like another sample."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.nodes.ports import SAMPLE, Port, Value
from ebmgraph.nodes.node import NoiseSource
from ebmgraph.nodes.registry import NODES


@attrs.define
class UniformConfig:
    low: float = -1.0
    high: float = 1.0
    batch_size: int | None = None

    def draw(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device) * (self.high - self.low) + self.low


@attrs.define
class GaussianConfig:
    std: float = 1.0
    batch_size: int | None = None

    def draw(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device) * self.std


class _Noise(NoiseSource):
    inputs = (Port("like", SAMPLE, "a sample whose shape (and batch size) the noise copies"),)
    outputs = (Port("x", SAMPLE, "the noise batch"),)

    def _shape(self, like_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.config.batch_size or like_shape[0], *like_shape[1:])

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"x": Value(SAMPLE, self._shape(inputs["like"].shape))}

    def __call__(self, ctx, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.config.draw(self._shape(tuple(like.shape)), ctx.generator(self.name), like.device)}


@NODES.register
class UniformNoise(_Noise):
    """Uniform noise on [low, high] shaped like ``like`` (short-run MCMC initialization)."""

    type_name = "uniform_noise"
    Config = UniformConfig


@NODES.register
class GaussianNoise(_Noise):
    """Gaussian noise with standard deviation ``std`` shaped like ``like``."""

    type_name = "gaussian_noise"
    Config = GaussianConfig
