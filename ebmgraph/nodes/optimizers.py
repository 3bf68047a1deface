"""Optimizer types. The engine binds each to its models' parameters and its own losses."""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch

from ebmgraph.nodes.registry import OPTIMIZERS, OptimizerType


class _TorchOptimizer(OptimizerType):
    """A torch.optim class whose keyword arguments are exactly the config's fields."""

    torch_class: ClassVar[type[torch.optim.Optimizer]]

    @classmethod
    def build(cls, params, config):
        return cls.torch_class(params, **attrs.asdict(config))


def _rate_problems(config) -> list[tuple[str, str]]:
    """lr and weight decay must be finite and >= 0."""
    return [(key, f"must be a finite number >= 0, found {getattr(config, key)}") for key in ("lr", "weight_decay")
            if not (math.isfinite(getattr(config, key)) and getattr(config, key) >= 0)]


@attrs.define
class AdamConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        out = _rate_problems(self)
        if not all(0 <= beta < 1 for beta in self.betas):
            out.append(("betas", f"each must be in [0, 1), found {list(self.betas)}"))
        if not self.eps > 0:
            out.append(("eps", f"must be > 0, found {self.eps}"))
        return out


@OPTIMIZERS.register
class Adam(_TorchOptimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient)."""

    type_name = "adam"
    Config = AdamConfig
    torch_class = torch.optim.Adam


@attrs.define
class AdamWConfig(AdamConfig):
    weight_decay: float = 0.01


@OPTIMIZERS.register
class AdamW(_TorchOptimizer):
    """torch.optim.AdamW (decoupled weight decay)."""

    type_name = "adamw"
    Config = AdamWConfig
    torch_class = torch.optim.AdamW


@attrs.define
class SGDConfig:
    lr: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        out = _rate_problems(self)
        if not 0 <= self.momentum < 1:
            out.append(("momentum", f"must be in [0, 1), found {self.momentum}"))
        return out


@OPTIMIZERS.register
class SGD(_TorchOptimizer):
    """torch.optim.SGD."""

    type_name = "sgd"
    Config = SGDConfig
    torch_class = torch.optim.SGD
