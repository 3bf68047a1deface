"""Langevin chains around a generator's images (Hat EBM, Hill et al. 2022): on a residual image
added to fixed generated images, U(Y | Z) = H(Y + G(Z)) (appendix D, eq. 6), and on the
generator's latents alone, U(z) = H(G(z)) (appendix H, eq. 13)."""

from __future__ import annotations

import torch

from ebmgraph.nodes.generators import generated_shape
from ebmgraph.nodes.kernels import EnergyKernel
from ebmgraph.nodes.mcmc.proposal import EnergyFunction
from ebmgraph.nodes.ports import SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.registry import NODES

ENERGY_PORT = Port("energy", model_ref("energy"), "the hat network H: the energy of the summed image")


@NODES.register
class ResidualLangevin(EnergyKernel):
    """Langevin on a residual image Y added to the constant images ``base`` (G(Z) for this step's
    latents Z): K steps of ``Y <- Y - a grad_Y H(Y + base) / T + b xi`` from Y = 0 with Z fixed
    (Hat EBM eq. 6; Algorithm 1 lines 6-8), each sample's gradient norm clipped with
    ``clip_grad_norm`` (before the division by T); ``clamp`` bounds Y. ``x`` is base + Y_K, the
    negative samples X^ (line 9). As grad_Y H(Y + base) = grad H at Y + base, evaluation chains
    (``eval.init: generator``) run the same chain on the image from G(z)."""

    type_name = "residual_langevin"
    inputs = (ENERGY_PORT, Port("base", SAMPLE, "the images the residual is added to (constants), e.g. G(Z)"))
    outputs = (Port("x", SAMPLE, "base + Y_K: the samples (constants for parameter learning)", stop_gradient=True),
               Port("residual", SAMPLE, "the residual image Y_K", stop_gradient=True))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        self.check_energy_input("base", inputs["base"])
        return {"x": inputs["base"], "residual": inputs["base"]}

    def __call__(self, ctx, base: torch.Tensor) -> dict[str, torch.Tensor]:
        base, energy = base.detach(), self.models["energy"]
        state = self.sample_chain(ctx, lambda y: energy(y + base), torch.zeros_like(base),
                                  end_energy=ctx.diagnostics_wanted)
        residual = state.position
        ctx.record(self.name, "residual_norm", residual.flatten(1).norm(dim=1).mean())
        return {"x": base + residual, "residual": residual}


@NODES.register
class PushforwardLangevin(EnergyKernel):
    """Langevin on the latents z of a generator for the energy of their images, U(z) = H(G(z))
    (Hat EBM eq. 13, appendix H: no residual): K steps of ``z <- z - a grad_z H(G(z)) / T + b xi``
    from ``init``, gradients through the frozen generator; ``x`` is G(z_K). Evaluation chains run
    in the latent space (``eval.decode`` names the generator)."""

    type_name = "pushforward_langevin"
    inputs = (ENERGY_PORT, Port("generator", model_ref("generator"), "the generator G"),
              Port("init", SAMPLE, "initial latents"))
    outputs = (Port("x", SAMPLE, "the images G(z_K) of the last latents (constants for parameter learning)",
                    stop_gradient=True),
               Port("z", SAMPLE, "the latents z_K after the last step", stop_gradient=True))

    def sampled_energy(self, energy: torch.nn.Module) -> EnergyFunction:
        """The energy ``chain`` follows when ``energy`` is bound to the energy port: H(G(z))."""
        generator = self.models["generator"]
        return lambda z: energy(generator(z))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        images = Value(SAMPLE, generated_shape(self, inputs["init"], port="init"))
        self.check_energy_input("init", images)
        return {"x": images, "z": inputs["init"]}

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.sample_chain(ctx, self.sampled_energy(self.models["energy"]), init,
                                  end_energy=ctx.diagnostics_wanted)
        with torch.no_grad():
            return {"x": self.models["generator"](state.position), "z": state.position}
