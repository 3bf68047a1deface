"""Langevin on latents: z-chains on a generator's posterior p(z|x) ∝ p(x|z) p(z) (Dual-MCMC eq. 21,
DAMC eq. 7 second line) and on a latent energy prior p(z) ∝ exp(-E(z)) N(z; 0, I) (DAMC eq. 7
first line)."""

from __future__ import annotations

import torch

from ebmgraph.nodes.generators import standard_normal_log_density
from ebmgraph.nodes.kernels import ChainKernel
from ebmgraph.nodes.mcmc.proposal import EnergyFunction
from ebmgraph.nodes.ports import SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.registry import NODES

LATENT_OUTPUT = (Port("z", SAMPLE, "latents after the last step (a constant for parameter learning)",
                      stop_gradient=True),)


def posterior_energy(generator: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None,
                     prior: torch.nn.Module | None = None) -> EnergyFunction:
    """U(z) = -log p(x|z) - log p(z) per sample for observed ``x`` (the pixels where ``mask`` is 1),
    plus E(z) for a latent energy ``prior`` (Dual-MCMC eq. 21, DAMC eq. 7 second line)."""
    def energy(z: torch.Tensor) -> torch.Tensor:
        value = -generator.log_joint(x, z, mask)
        return value if prior is None else value + prior(z)
    return energy


def latent_prior_energy(energy: torch.nn.Module) -> EnergyFunction:
    """U(z) = E(z) - log N(z; 0, I) per sample, up to a constant: the prior exp(-E(z)) N(z; 0, I)
    (DAMC eq. 7, first line)."""
    def prior_energy(z: torch.Tensor) -> torch.Tensor:
        return energy(z) - standard_normal_log_density(z)
    return prior_energy


@NODES.register
class PosteriorLangevin(ChainKernel):
    """Unadjusted Langevin on the latent z with energy U(z) = -log p(x|z) - log p(z): the gaussian
    generator's reconstruction term ||m (x - g(z))||^2 / (2 sigma^2) over the pixels where ``mask``
    is 1 (all when unconnected), plus ||z||^2 / 2 for the N(0, I) prior, plus E(z) when a latent
    energy ``prior`` is bound (the prior exp(-E(z)) N(z; 0, I)). Started from ``init`` (e.g. the
    inference model's draw); same (a, b, T) parameterization as ``langevin``."""

    type_name = "posterior_langevin"
    inputs = (Port("generator", model_ref("generator"), "the generator p(x|z)"),
              Port("prior", model_ref("energy"), "optional latent energy E(z) tilting the N(0, I) prior",
                   optional=True),
              Port("x", SAMPLE, "the observed samples"),
              Port("init", SAMPLE, "initial latents"),
              Port("mask", SAMPLE, "optional 0/1 mask of observed pixels, shaped like x", optional=True))
    outputs = LATENT_OUTPUT

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        generated = self.check_model_input("generator", "init", inputs["init"])
        if generated != inputs["x"].shape:
            raise ShapeError("x", f"the generator maps these latents to shape {generated}, not to the observed shape")
        if "mask" in inputs and inputs["mask"].shape[1:] != inputs["x"].shape[1:]:
            raise ShapeError("mask", f"the mask must be shaped like x, {inputs['x'].shape}")
        if "prior" in self.models:
            self.check_model_input("prior", "init", inputs["init"])
        return {"z": Value(SAMPLE, inputs["init"].shape)}

    def __call__(self, ctx, x: torch.Tensor, init: torch.Tensor, mask: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        energy = posterior_energy(self.models["generator"], x.detach(), mask, self.models.get("prior"))
        return {"z": self.sample_chain(ctx, energy, init, end_energy=ctx.diagnostics_wanted).position}


@NODES.register
class PriorLangevin(ChainKernel):
    """Unadjusted Langevin on the latent z with energy U(z) = E(z) + ||z||^2 / 2: the energy-based
    prior exp(-E(z)) N(z; 0, I) of a latent EBM (DAMC eq. 7, first line). Same (a, b, T)
    parameterization as ``langevin``."""

    type_name = "prior_langevin"
    inputs = (Port("energy", model_ref("energy"), "the latent energy E(z)"),
              Port("init", SAMPLE, "initial latents"))
    outputs = LATENT_OUTPUT

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        self.check_energy_input("init", inputs["init"])
        return {"z": Value(SAMPLE, inputs["init"].shape)}

    @classmethod
    def sampled_energy(cls, energy: torch.nn.Module) -> EnergyFunction:
        """The energy ``chain`` follows when ``energy`` is bound to the energy port: E(z) + ||z||^2 / 2."""
        return latent_prior_energy(energy)

    def prior_energy(self, z: torch.Tensor) -> torch.Tensor:
        """U(z) = E(z) - log N(z; 0, I) per sample, up to a constant."""
        return self.sampled_energy(self.models["energy"])(z)

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z": self.sample_chain(ctx, self.prior_energy, init, end_energy=ctx.diagnostics_wanted).position}
