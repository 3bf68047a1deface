"""Optimizer types. The engine binds each to its models' parameters and its own losses."""

from __future__ import annotations

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


@attrs.define
class AdamConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


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


@OPTIMIZERS.register
class SGD(_TorchOptimizer):
    """torch.optim.SGD."""

    type_name = "sgd"
    Config = SGDConfig
    torch_class = torch.optim.SGD
