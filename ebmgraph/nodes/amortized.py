"""Nodes of diffusion amortizers (DAMC, Yu et al. 2023, Listing 2): draw latents from q_phi(z | x)
and fit q_phi to the latents MCMC produced (eq. 3-4)."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.nodes.mcmc.freezing import frozen_parameters
from ebmgraph.nodes.ports import LOSS, SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import AmortizedDraw, LossNode, Node, NoiseSource, run_on_meta
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
class ContextMaskConfig:
    unconditional_probability: float = 0.2

    def problems(self) -> list[tuple[str, str]]:
        if not 0.0 <= self.unconditional_probability <= 1.0:
            return [("unconditional_probability", f"must be in [0, 1], found {self.unconditional_probability}")]
        return []


@NODES.register
class ContextMask(NoiseSource):
    """Listing 2's mask for unconditional learning: 0 for a random ``unconditional_probability`` of
    the samples of ``like``, 1 for the rest. A draw, so a repeated phase (Listing 2's M = 6 fits of
    q_phi) uses one mask for all its repetitions, as the listing draws it once per batch."""

    type_name = "context_mask"
    Config = ContextMaskConfig
    inputs = (Port("like", SAMPLE, "the batch the mask is for"),)
    outputs = (Port("keep", SAMPLE, "float mask of shape (batch,): 1 keeps a sample's context, 0 zeroes it"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"keep": Value(SAMPLE, (inputs["like"].shape[0],))}

    def __call__(self, ctx, like: torch.Tensor) -> dict[str, torch.Tensor]:
        draw = torch.rand(like.shape[0], generator=ctx.generator(self.name), device=like.device)
        return {"keep": (draw >= self.config.unconditional_probability).to(like.dtype)}


@attrs.define
class DenoisingLossConfig:
    weight: float = 1.0


@NODES.register
class DenoisingLoss(LossNode):
    """``weight * mean ½ ||ε_phi(z_λ, λ, c) - ε||²`` on the target latents ``z`` (eq. 3): the
    amortizer's M-estimation step toward the distribution MCMC produced (eq. 4). The context c is
    the embedding of ``x``, zeroed where ``keep`` (a ``context_mask``) is 0 so the same network also
    learns q_phi(z); without ``keep`` every context is kept."""

    type_name = "denoising_loss"
    Config = DenoisingLossConfig
    inputs = (Port("amortizer", model_ref("amortizer"), "the diffusion amortizer q_phi being fitted"),
              Port("z", SAMPLE, "target latents (e.g. the posterior chains' output)"),
              Port("x", SAMPLE, "the observations they belong to"),
              Port("keep", SAMPLE, "a context_mask: 0 zeroes a sample's context (default: keep all)", optional=True))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        latent = self.models["amortizer"].latent_shape
        if tuple(inputs["z"].shape[1:]) != tuple(latent):
            raise ShapeError("z", f"the amortizer models latents of shape (B, {latent[0]})")
        if inputs["z"].shape[0] != inputs["x"].shape[0]:
            raise ShapeError("x", f"needs one observation per latent, {inputs['z'].shape[0]}")
        if "keep" in inputs and tuple(inputs["keep"].shape) != (inputs["x"].shape[0],):
            raise ShapeError("keep", f"needs one mask value per observation, shape ({inputs['x'].shape[0]},)")
        check_context(self, "x", inputs["x"])
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, z: torch.Tensor, x: torch.Tensor, keep: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        amortizer = self.models["amortizer"]
        context = amortizer.context(x.detach(), None if keep is None else keep.detach())
        value = amortizer.denoising_loss(z.detach(), context, ctx.generator(self.name)).mean()
        ctx.record(self.name, "denoising", value)
        return {"loss": self.config.weight * value}
