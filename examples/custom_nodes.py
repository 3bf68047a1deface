"""A plugin: two node types written on ebmgraph's public bases (docs/writing-nodes.md).

- ``logistic_contrastive``: the logistic (noise-contrastive style) loss softplus(E(x+) - E(x-)),
  averaged over pairs, instead of contrastive divergence's mean E(x+) - mean E(x-);
- ``flip_symmetric_langevin``: Langevin on the flip-symmetrized energy
  E_sym(x) = (E(x) + E(flip(x))) / 2, a kernel whose target is invariant to horizontal flips.

Name this file under a graph's ``plugins:`` (examples/custom_node.yaml) or pass it with
``ebmgraph --plugin examples/custom_nodes.py ...``.
"""

import attrs
import torch

from ebmgraph import nodes


@attrs.define
class LogisticConfig:
    weight: float = 1.0


@nodes.register
class LogisticContrastive(nodes.LossNode):
    """weight * mean softplus(E(x+) - E(x-)) over pairs of positive and negative energies."""

    type_name = "logistic_contrastive"
    Config = LogisticConfig
    inputs = (nodes.Port("positive", nodes.ENERGY, "energies of data"),
              nodes.Port("negative", nodes.ENERGY, "energies of samples"))
    outputs = (nodes.Port("loss", nodes.LOSS),)

    def infer(self, inputs):
        if inputs["positive"].shape != inputs["negative"].shape:
            raise nodes.ShapeError("negative", f"pairs need as many negatives as positives, {inputs['positive'].shape}")
        return {"loss": nodes.Value(nodes.LOSS, ())}

    def __call__(self, ctx, positive, negative):
        ctx.record(self.name, "gap", (negative - positive).mean())
        return {"loss": self.config.weight * torch.nn.functional.softplus(positive - negative).mean()}


@nodes.register
class FlipSymmetricLangevin(nodes.EnergyKernel):
    """Langevin dynamics (any of ebmgraph's parameterizations) on (E(x) + E(flip(x))) / 2."""

    type_name = "flip_symmetric_langevin"

    @classmethod
    def sampled_energy(cls, energy):
        return lambda x: (energy(x) + energy(x.flip(-1))) / 2

    def __call__(self, ctx, init):
        return {"x": self.sample_chain(ctx, self.sampled_energy(self.models["energy"]), init).position}
