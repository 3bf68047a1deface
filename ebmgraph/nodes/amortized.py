"""Nodes of diffusion amortizers (DAMC, Yu et al. 2023, Listing 2): draw latents from q_phi(z | x)
and fit q_phi to the latents MCMC produced (eq. 3-4)."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.nodes.mcmc.freezing import frozen_parameters
from ebmgraph.nodes.ports import LOSS, SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import AmortizedDraw, LossNode, Node, run_on_meta
from ebmgraph.nodes.registry import NODES


def check_context(node: Node, port: str, value: Value) -> None:
    """ShapeError unless the amortizer's observation encoder takes samples shaped like ``value``."""
    try:
        run_on_meta(node.models["amortizer"].encoder, torch.empty(value.shape, device="meta"))
    except (RuntimeError, ValueError) as error:
        raise ShapeError(port, f"the amortizer's observation encoder cannot take shape {tuple(value.shape)}: "
                               f"{str(error).strip().splitlines()[0]}") from None


@attrs.define
class AmortizedSampleConfig:
    conditional: bool = True
    noise: bool = True


@NODES.register
class AmortizedSample(AmortizedDraw):
    """z ~ q_phi(z | x), one per sample of ``x``, by the amortizer's ancestral sampler (with the
    amortizer's parameters frozen; bind the EMA target network, as DAMC does, to initialize chains).
    ``conditional: false`` draws from the unconditional q_phi(z) (zero embedding), ``x`` then only
    giving the batch size; ``noise: false`` follows the reverse-process means (deterministic given
    the starting noise)."""

    type_name = "amortized_sample"
    Config = AmortizedSampleConfig
    inputs = (Port("amortizer", model_ref("amortizer"), "the diffusion amortizer q_phi"),
              Port("x", SAMPLE, "the observations conditioning the draw"))
    outputs = (Port("z", SAMPLE, "latent draws (a constant for parameter learning)", stop_gradient=True),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        if self.config.conditional:
            check_context(self, "x", inputs["x"])
        return {"z": Value(SAMPLE, (inputs["x"].shape[0], *self.models["amortizer"].latent_shape))}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        amortizer = self.models["amortizer"]
        with torch.no_grad(), frozen_parameters(amortizer):
            context = (amortizer.context(x) if self.config.conditional
                       else amortizer.unconditional_context(x.shape[0], x.device))
            z = amortizer.sample(context, ctx.generator(self.name), self.config.noise)
        ctx.record(self.name, "z_norm", z.flatten(1).norm(dim=1).mean())
        return {"z": z}


@attrs.define
class DenoisingLossConfig:
    unconditional_probability: float = 0.2
    weight: float = 1.0

    def problems(self) -> list[tuple[str, str]]:
        if not 0.0 <= self.unconditional_probability <= 1.0:
            return [("unconditional_probability", f"must be in [0, 1], found {self.unconditional_probability}")]
        return []


@NODES.register
class DenoisingLoss(LossNode):
    """``weight * mean ½ ||ε_phi(z_λ, λ, c) - ε||²`` on the target latents ``z`` (eq. 3): the
    amortizer's M-estimation step toward the distribution MCMC produced (eq. 4). The context c is
    the embedding of ``x``, zeroed for a random ``unconditional_probability`` of the samples so the
    same network also learns q_phi(z) (Listing 2's 20% mask)."""

    type_name = "denoising_loss"
    Config = DenoisingLossConfig
    inputs = (Port("amortizer", model_ref("amortizer"), "the diffusion amortizer q_phi being fitted"),
              Port("z", SAMPLE, "target latents (e.g. the posterior chains' output)"),
              Port("x", SAMPLE, "the observations they belong to"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        latent = self.models["amortizer"].latent_shape
        if tuple(inputs["z"].shape[1:]) != tuple(latent):
            raise ShapeError("z", f"the amortizer models latents of shape (B, {latent[0]})")
        if inputs["z"].shape[0] != inputs["x"].shape[0]:
            raise ShapeError("x", f"needs one observation per latent, {inputs['z'].shape[0]}")
        check_context(self, "x", inputs["x"])
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        amortizer, generator = self.models["amortizer"], ctx.generator(self.name)
        keep = (torch.rand(x.shape[0], generator=generator, device=x.device)
                >= self.config.unconditional_probability).to(x.dtype)
        value = amortizer.denoising_loss(z.detach(), amortizer.context(x.detach(), keep), generator).mean()
        ctx.record(self.name, "denoising", value)
        return {"loss": self.config.weight * value}
