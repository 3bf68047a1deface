"""The KL term of Improved CD (Du et al. 2021, eq. 6): L_KL = L_opt + L_ent, the energy of
samples that carry a graph to the energy's parameters, scored with those parameters held fixed
(eq. 7), and a nearest-neighbour estimate of their negative entropy (eq. 8)."""

from __future__ import annotations

import math

import attrs
import torch
from torch.func import functional_call

from ebmgraph.nodes.ports import LOSS, SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import LossNode
from ebmgraph.nodes.registry import NODES


def energy_with_fixed_parameters(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """E_{stop_grad(theta)}(x): the model's output with detached parameters and buffers, so a
    parameter gradient reaches theta only through ``x``."""
    fixed = {name: tensor.detach() for name, tensor in (*model.named_parameters(), *model.named_buffers())}
    return functional_call(model, fixed, (x,))


def nearest_neighbour_distances(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """L2 distance of each sample of ``x`` to its nearest neighbour in ``reference`` (flattened),
    computed from differences: the matrix-product shortcut rounds close pairs to distance 0."""
    distances = torch.cdist(x.flatten(1), reference.flatten(1).to(x.dtype), compute_mode="donot_use_mm_for_euclid_dist")
    return distances.min(dim=1).values


def nearest_neighbour_entropy(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimate (nats) of the distribution of ``x`` from distances to
    a separate set of m reference samples: d * mean log rho + log m + log V_d + gamma, with V_d the
    volume of the unit d-ball and gamma the Euler-Mascheroni constant. Scaling the samples by c
    shifts it by d log c, as it does the entropy."""
    d, m = x[0].numel(), len(reference)
    log_unit_ball = d / 2 * math.log(math.pi) - math.lgamma(d / 2 + 1)
    log_rho = nearest_neighbour_distances(x, reference).log()
    return d * log_rho.mean() + math.log(m) + log_unit_ball + 0.5772156649015329


@attrs.define
class WeightConfig:
    weight: float = 1.0


@NODES.register
class SamplerEnergy(LossNode):
    """L_opt (eq. 7): ``weight * mean E_{stop_grad(theta)}(x)`` for samples ``x`` that depend on
    theta through the sampler (a kernel's ``x_differentiable``); it lowers the energy the
    sampler reaches, not the energy function at fixed samples."""

    type_name = "sampler_energy"
    Config = WeightConfig
    inputs = (Port("energy", model_ref("energy"), "the energy E_theta, used with its parameters held fixed"),
              Port("x", SAMPLE, "samples with a graph to theta (a kernel's x_differentiable)"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        self.check_energy_input("x", inputs["x"])
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        value = energy_with_fixed_parameters(self.models["energy"], x).mean()
        ctx.record(self.name, "E", value)
        return {"loss": self.config.weight * value}


@NODES.register
class NearestNeighbourEntropy(LossNode):
    """L_ent (eq. 8): ``weight * mean(-log NN(x, B))``, the L2 distance of each sample to its
    nearest neighbour in a set B of past samples (a bank's ``history``); minimizing it spreads the
    samples. Records the Kozachenko-Leonenko entropy estimate, of which the loss is -1/d times the
    sample-dependent part. Zero until the bank holds B."""

    type_name = "nearest_neighbour_entropy"
    Config = WeightConfig
    inputs = (Port("x", SAMPLE, "samples with a graph to theta (a kernel's x_differentiable)"),
              Port("reference", SAMPLE, "the set B of past samples (a bank's history)"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        x, reference = inputs["x"].shape, inputs["reference"].shape
        if reference[0] < 1:
            raise ShapeError("reference", "the reference set is empty; give the bank a 'history' size (e.g. 100)")
        if reference[1:] != x[1:]:
            raise ShapeError("reference", f"reference samples of shape {reference[1:]} cannot be compared with "
                                          f"samples of shape {x[1:]}")
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, x: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(reference) == 0:
            return {"loss": torch.zeros((), device=x.device)}
        loss = -nearest_neighbour_distances(x, reference).log().mean()
        if ctx.diagnostics_wanted:
            ctx.record(self.name, "entropy", nearest_neighbour_entropy(x.detach(), reference))
        return {"loss": self.config.weight * loss}
