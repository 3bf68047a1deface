"""Optimizer types. The engine binds each to its models' parameters and its own losses."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.nodes.registry import OPTIMIZERS, OptimizerType


@attrs.define
class AdamConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


@OPTIMIZERS.register
class Adam(OptimizerType):
    """torch.optim.Adam (L2 weight decay added to the gradient)."""

    type_name = "adam"
    Config = AdamConfig

    @classmethod
    def build(cls, params, config):
        return torch.optim.Adam(params, **attrs.asdict(config))


@attrs.define
class AdamWConfig(AdamConfig):
    weight_decay: float = 0.01


@OPTIMIZERS.register
class AdamW(OptimizerType):
    """torch.optim.AdamW (decoupled weight decay)."""

    type_name = "adamw"
    Config = AdamWConfig

    @classmethod
    def build(cls, params, config):
        return torch.optim.AdamW(params, **attrs.asdict(config))


@attrs.define
class SGDConfig:
    lr: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


@OPTIMIZERS.register
class SGD(OptimizerType):
    """torch.optim.SGD."""

    type_name = "sgd"
    Config = SGDConfig

    @classmethod
    def build(cls, params, config):
        return torch.optim.SGD(params, **attrs.asdict(config))
