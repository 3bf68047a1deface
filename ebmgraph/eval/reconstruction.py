"""Reconstruction and inpainting through a graph's inference model, posterior kernel and x-kernel
(Dual-MCMC, Cui & Han 2023: Section 5.3 and appendix A.3)."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.engine.program import Program
from ebmgraph.nodes.mcmc.proposal import EnergyFunction
from ebmgraph.nodes.posterior import posterior_energy


@attrs.frozen
class LatentInference:
    """The names of the nodes that infer and revise latents in a program (defaults: dual_mcmc.yaml)."""

    encoder: str = "encoder"
    generator: str = "generator"
    posterior: str = "revised_z"
    sampler: str = "revised_x"


def _chain(kernel, energy: EnergyFunction, init: torch.Tensor, steps: int | None, ctx: StepContext
           ) -> torch.Tensor:
    """The states after ``steps`` (default: the kernel's own) of the kernel node's chain on ``energy``
    from ``init``, drawing from the node's generator, with the node's models frozen."""
    parameters = kernel.config if steps is None else attrs.evolve(kernel.config, steps=steps)
    state, _ = kernel.chain(energy, init, parameters, ctx.generator(kernel.name), kernel.models.values())
    return state.position


def reconstruct(program: Program, x: torch.Tensor, mask: torch.Tensor | None = None, *, from_encoder: bool = True,
                z_steps: int | None = None, x_steps: int | None = None, names: LatentInference = LatentInference(),
                seed_label: str = "reconstruct") -> dict[str, torch.Tensor]:
    """Images at each stage: ``inference`` g(z0) with z0 the encoder's mean of the observed image
    (or z0 ~ N(0, I) when ``from_encoder`` is False), ``posterior`` g(z~) after ``z_steps`` of
    posterior Langevin on the observed pixels (``mask`` 1 = observed), and ``revised`` after
    ``x_steps`` of the EBM's Langevin from there (when ``x_steps`` is not 0)."""
    ctx = StepContext(program.spec.seed, 0, program.device)
    generator = program.models[names.generator]
    observed = x if mask is None else x * mask
    with torch.no_grad():
        if from_encoder:
            z0 = program.models[names.encoder](observed)[0]
        else:
            z0 = torch.randn((len(x), *generator.latent_shape), generator=ctx.generator(f"{seed_label}:z0"),
                             device=x.device)
        stages = {"inference": generator(z0)}
    posterior = program.nodes[names.posterior]
    energy = posterior_energy(posterior.models["generator"], observed.detach(), mask, posterior.models.get("prior"))
    z = _chain(posterior, energy, z0, z_steps, ctx)
    with torch.no_grad():
        stages["posterior"] = generator(z)
    if x_steps != 0:
        sampler = program.nodes[names.sampler]
        energy = sampler.sampled_energy(sampler.models["energy"])
        stages["revised"] = _chain(sampler, energy, stages["posterior"], x_steps, ctx)
    return stages
