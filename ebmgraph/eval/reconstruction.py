"""Reconstruction and inpainting through a graph's inference model, posterior kernel and x-kernel
(Dual-MCMC, Cui & Han 2023: Section 5.3 and appendix A.3)."""

from __future__ import annotations

import attrs
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.engine.program import Program


@attrs.frozen
class LatentInference:
    """The names of the nodes that infer and revise latents in a program (defaults: dual_mcmc.yaml)."""

    encoder: str = "encoder"
    generator: str = "generator"
    posterior: str = "revised_z"
    sampler: str = "revised_x"


def _with_steps(program: Program, name: str, steps: int):
    node = program.nodes[name]
    return type(node)(name, attrs.evolve(node.config, steps=steps), node.models, node.device)


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
    posterior = _with_steps(program, names.posterior, z_steps if z_steps is not None
                            else program.nodes[names.posterior].config.steps)
    z = posterior(ctx, x=observed, init=z0, mask=mask)["z"]
    with torch.no_grad():
        stages["posterior"] = generator(z)
    if x_steps != 0:
        sampler = program.nodes[names.sampler] if x_steps is None else _with_steps(program, names.sampler, x_steps)
        stages["revised"] = sampler(ctx, init=stages["posterior"])["x"]
    return stages
