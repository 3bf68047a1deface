"""Energy evaluation and the losses of contrastive-divergence training."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.nodes.ports import ENERGY, LOSS, SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.node import LossNode, ModelCall
from ebmgraph.nodes.registry import NODES


@NODES.register
class EvaluateEnergy(ModelCall):
    """E(x) for a batch: one scalar per sample, differentiable with respect to the energy's parameters."""

    type_name = "evaluate_energy"
    inputs = (Port("energy", model_ref("energy"), "the energy model"),
              Port("x", SAMPLE, "the samples to score"))
    outputs = (Port("energy", ENERGY, "E(x), shape (batch,)"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"energy": Value(ENERGY, self.check_energy_input("x", inputs["x"]))}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"energy": self.models["energy"](x)}


class _PairLoss(LossNode):
    inputs = (Port("positive", ENERGY, "energies of data samples, E(x+)"),
              Port("negative", ENERGY, "energies of model samples, E(x-)"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"loss": Value(LOSS, ())}


@attrs.define
class ContrastiveDivergenceConfig:
    weight: float = 1.0


@NODES.register
class ContrastiveDivergence(_PairLoss):
    """Maximum-likelihood gradient of an EBM: ``weight * (mean E(x+) - mean E(x-))``, with x- from
    a kernel (a constant). Records E+, E- and their gap, and both energies' histograms."""

    type_name = "contrastive_divergence"
    Config = ContrastiveDivergenceConfig

    def __call__(self, ctx, positive: torch.Tensor, negative: torch.Tensor) -> dict[str, torch.Tensor]:
        e_pos, e_neg = positive.mean(), negative.mean()
        ctx.record(self.name, "E+", e_pos)
        ctx.record(self.name, "E-", e_neg)
        ctx.record(self.name, "gap", e_neg - e_pos)
        ctx.record_histogram(self.name, "E+", positive)
        ctx.record_histogram(self.name, "E-", negative)
        return {"loss": self.config.weight * (e_pos - e_neg)}


@attrs.define
class EnergyRegularizerConfig:
    alpha: float = 1.0


@NODES.register
class EnergyRegularizer(_PairLoss):
    """Energy-magnitude regularizer of Du & Mordatch (2019): ``alpha * mean(E(x+)^2 + E(x-)^2)``."""

    type_name = "energy_regularizer"
    Config = EnergyRegularizerConfig

    def __call__(self, ctx, positive: torch.Tensor, negative: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.config.alpha * (positive.pow(2).mean() + negative.pow(2).mean())}
