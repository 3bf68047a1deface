"""Maximum-likelihood losses of generator and inference models on (x, z) pairs (Dual-MCMC
eq. 18 and 19: each is the negative mean log density over one pair of batches; the equations'
two expectations are two such losses bound to the same optimizer)."""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
import torch

from ebmgraph.nodes.ports import LOSS, SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.node import LossNode
from ebmgraph.nodes.registry import NODES


@attrs.define
class LogLikelihoodConfig:
    weight: float = 1.0


class _PairLogLikelihood(LossNode):
    """``-weight * mean log_density(x, z)`` over a batch of pairs, recorded as ``record_key``."""

    Config = LogLikelihoodConfig
    outputs = (Port("loss", LOSS, "the scalar loss"),)
    record_key: ClassVar[str]

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"loss": Value(LOSS, ())}

    @abc.abstractmethod
    def log_density(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-sample log density of the pairs."""

    def __call__(self, ctx, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        value = self.log_density(x.detach(), z.detach()).mean()
        ctx.record(self.name, self.record_key, value)
        return {"loss": -self.config.weight * value}


@NODES.register
class GeneratorLogLikelihood(_PairLogLikelihood):
    """``-weight * mean log p_theta(x, z)`` = ``weight * mean(||x - g(z)||^2 / (2 sigma^2) + ||z||^2 / 2)``
    plus constants: the generator's learning gradient on pairs (x, z) (eq. 18)."""

    type_name = "generator_log_likelihood"
    record_key = "log_joint"
    inputs = (Port("generator", model_ref("generator"), "the generator p_theta(x, z)"),
              Port("x", SAMPLE, "images"), Port("z", SAMPLE, "their latents"))

    def log_density(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.models["generator"].log_joint(x, z)


@NODES.register
class EncoderLogLikelihood(_PairLogLikelihood):
    """``-weight * mean log q_phi(z | x)``: the inference model's learning gradient on pairs (x, z) (eq. 19)."""

    type_name = "encoder_log_likelihood"
    record_key = "log_prob"
    inputs = (Port("encoder", model_ref("encoder"), "the inference model q_phi(z|x)"),
              Port("x", SAMPLE, "images"), Port("z", SAMPLE, "their latents"))

    def log_density(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.models["encoder"].log_prob(z, x)
