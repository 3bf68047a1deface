"""Exponential moving average of a model's parameters (used for evaluation and sampling)."""

from __future__ import annotations

import copy

import attrs
import torch

from ebmgraph.nodes.registry import MODELS, DerivedModelType


@attrs.define
class EMAConfig:
    of: str
    decay: float = 0.999

    def problems(self) -> list[tuple[str, str]]:
        return [] if 0.0 <= self.decay < 1.0 else [("decay", f"must be in [0, 1), found {self.decay}")]


@MODELS.register
class EMA(DerivedModelType):
    """A copy of model ``of`` updated after every step as ``p_ema <- decay p_ema + (1 - decay) p``.
    Its role is the role of ``of``; evaluation and ``ebmgraph sample`` use it when present."""

    type_name = "ema"
    Config = EMAConfig

    @classmethod
    def build_from(cls, config, source: torch.nn.Module) -> torch.nn.Module:
        copied = copy.deepcopy(source)
        copied.requires_grad_(False)
        return copied


@torch.no_grad()
def ema_update(target: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), 1.0 - decay)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
