"""MCMC transition kernels on an energy: unadjusted Langevin and MALA on the same proposal, HMC
and underdamped Langevin on the same leapfrog, as nodes over the pure chains of ``nodes/mcmc``."""

from __future__ import annotations

import math
from functools import partial
from typing import ClassVar

import attrs
import torch

from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import ChainInfo, Differentiable, langevin_chain, mala_chain
from ebmgraph.nodes.mcmc.hamiltonian import HmcParameters, UnderdampedParameters, hmc_chain, underdamped_chain
from ebmgraph.nodes.mcmc.metropolis import log_acceptance_ratio
from ebmgraph.nodes.mcmc.compiled import compiled_gradient
from ebmgraph.nodes.mcmc.proposal import EnergyFunction, GradientFunction, energy_and_clipped_gradient
from ebmgraph.nodes.ports import SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.node import Kernel
from ebmgraph.nodes.registry import NODES


class ChainKernel(Kernel):
    """Public base of kernels built on the pure MCMC core (``nodes/mcmc``): the config is a
    ``LangevinParameters`` (one (a, b, T) parameterization, clipping, clamp), ``chain`` is
    ``langevin_chain`` (default) or ``mala_chain``, and ``__call__`` calls
    ``self.sample_chain(ctx, energy, init)`` with any per-sample energy function of the state:
    the chain runs with every bound model frozen, draws from the node's own generator and records
    the kernel's diagnostics. Evaluation and reconstruction call ``chain`` directly."""

    Config = LangevinParameters
    chain: ClassVar = staticmethod(langevin_chain)
    outputs = (Port("x", SAMPLE, "states after the last step (a constant for parameter learning)",
                    stop_gradient=True),)

    def clipping(self) -> tuple[float | None, float | None]:
        """(clip by value, clip per-sample norm) of the gradient the chain moves along."""
        return self.config.clip_grad_value, self.config.clip_grad_norm

    def gradient_function(self, compile_mode: str = "default") -> GradientFunction:
        """E(x) and the clipped gradient the chain moves along (its ``gradient`` hook), through
        ``torch.compile`` in ``compile_mode`` when the config says ``compile: true``."""
        value, norm = self.clipping()
        if self.config.compile:
            return compiled_gradient(compile_mode, value, norm)
        return partial(energy_and_clipped_gradient, value=value, norm=norm)

    def sample_chain(self, ctx, energy: EnergyFunction, init: torch.Tensor, **options):
        """The chain's final state from ``init``; its diagnostics are recorded."""
        state, info = self.chain(energy, init, self.config, ctx.generator(self.name), self.models.values(),
                                 gradient=self.gradient_function(ctx.compile_mode), **options)
        self._record(ctx, info, init, state.position)
        return state

    def noise_per_step(self) -> float | None:
        """b, the scale of the noise each step adds (None: the kernel has no such scale)."""
        return self.config.resolved()[1]

    def _record(self, ctx, info: ChainInfo, init: torch.Tensor, end: torch.Tensor) -> None:
        """Mean energy at the chains' start and end, the mean per-sample norm of the last gradient,
        MALA's acceptance, and the chains' mobility: the mean distance ||x_K - x_0|| over the
        b sqrt(K d) that K steps of noise alone would move (about 1 for free diffusion, 0 for chains
        that stay where they are); nothing when the end energy was not computed."""
        if info.energy_end is None:
            return
        ctx.record(self.name, "energy_start", info.energy_start.mean())
        ctx.record(self.name, "energy_end", info.energy_end.mean())
        ctx.record(self.name, "grad_norm", info.gradient.flatten(1).norm(dim=1).mean())
        if info.acceptance is not None:
            ctx.record(self.name, "acceptance", info.acceptance)
        noise, steps = self.noise_per_step(), self.config.steps
        if noise and steps and init.shape == end.shape:
            distance = (end.detach() - init.detach()).flatten(1).norm(dim=1).mean()
            ctx.record(self.name, "mobility", distance / (noise * math.sqrt(steps * init[0].numel())))


class EnergyKernel(ChainKernel):
    """Public base of kernels on the energy model bound to their ``energy`` port, from ``init``
    states to ``x``; a subclass may change the energy the chain follows (``sampled_energy``) and
    can draw evaluation chains (``eval.kernel``)."""

    inputs = (Port("energy", model_ref("energy"), "the energy E(x) to sample from"),
              Port("init", SAMPLE, "initial states of the chains"))

    @classmethod
    def sampled_energy(cls, energy: torch.nn.Module) -> EnergyFunction:
        """The energy ``chain`` follows when ``energy`` is bound to the energy port: E itself."""
        return energy

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        self.check_energy_input("init", inputs["init"])
        return {"x": Value(SAMPLE, inputs["init"].shape)}


@attrs.define
class LangevinConfig(LangevinParameters):
    """Langevin parameters; ``differentiable`` (none, last or all) chooses the steps recomputed
    with a graph to the energy's parameters for the ``x_differentiable`` output."""

    differentiable: Differentiable = "none"


@NODES.register
class Langevin(EnergyKernel):
    """Unadjusted Langevin dynamics, K steps of ``x <- x - a grad E(x) / T + b xi`` (ebmgraph's single
    parameterization; see ``ebmgraph check`` for the resolved a, b and effective temperature),
    with optional gradient clipping (by value or per-sample norm) and state clamping.
    ``x_differentiable`` holds the same states, differentiable with respect to the energy's
    parameters through the last step (``differentiable: last``, Improved CD eq. 7) or every step
    (``all``, appendix D.2); with ``none`` it is the constant ``x``."""

    type_name = "langevin"
    Config = LangevinConfig
    outputs = (*ChainKernel.outputs,
               Port("x_differentiable", SAMPLE, "the states with a graph to the energy's parameters"))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        out = super().infer(inputs)
        return {**out, "x_differentiable": out["x"]}

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.sample_chain(ctx, self.models["energy"], init, differentiable=self.config.differentiable,
                                  end_energy=ctx.diagnostics_wanted)
        return {"x": state.position, "x_differentiable": state.differentiable_position}


@attrs.define
class MalaConfig(LangevinParameters):
    """Langevin parameters; the Metropolis correction targets exp(-E / T_eff), so a and b must be > 0."""

    def problems(self) -> list[tuple[str, str]]:
        out = super().problems()
        if not out:
            a, b, _ = self.resolved()
            if a <= 0 or b <= 0:
                out.append(("step_size" if self.step_size is not None else "epsilon" if self.epsilon is not None
                            else "eta", f"MALA needs a > 0 and b > 0, found a={a:g}, b={b:g}"))
        return out


@NODES.register
class Mala(EnergyKernel):
    """Metropolis-adjusted Langevin: the Langevin proposal ``y = x - a grad E(x) / T + b xi`` accepted
    with probability min(1, pi(y) q(x|y) / (pi(x) q(y|x))) for pi = exp(-E / T_eff). With ``clamp``
    the target is restricted to the box: proposals outside it are rejected."""

    type_name = "mala"
    Config = MalaConfig
    chain = staticmethod(mala_chain)

    def log_acceptance(self, x, y, energy_x, energy_y, grad_x, grad_y) -> torch.Tensor:
        """log pi(y) + log q(x|y) - log pi(x) - log q(y|x), per sample."""
        c = self.config
        return log_acceptance_ratio(x, y, energy_x, energy_y, grad_x, grad_y, c.drift, c.resolved()[1],
                                    c.effective_temperature)

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.sample_chain(ctx, self.models["energy"], init, log_acceptance=self.log_acceptance).position}


class HamiltonianKernel(EnergyKernel):
    """Kernels on H(x, p) = E(x) / T + |p|^2 / 2 with unit mass: they move along the exact
    gradient (clipping would break the Hamiltonian) and target exp(-E / T)."""

    def clipping(self) -> tuple[None, None]:
        """No clipping: the exact gradient."""
        return None, None

    def noise_per_step(self) -> None:
        """None: the noise enters through the momenta, not as b xi on the states."""
        return None

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.sample_chain(ctx, self.models["energy"], init).position}


@NODES.register
class Hmc(HamiltonianKernel):
    """Hamiltonian Monte Carlo: each of ``steps`` transitions draws p ~ N(0, I), takes
    ``leapfrog_steps`` leapfrog steps of size ``step_size`` and accepts with probability
    min(1, exp(H - H')); exact for exp(-E / T). With ``clamp``, moves outside the box are rejected."""

    type_name = "hmc"
    Config = HmcParameters
    chain = staticmethod(hmc_chain)


@NODES.register
class UnderdampedLangevin(HamiltonianKernel):
    """Underdamped (kinetic) Langevin, OBABO: half a momentum refresh p <- c p + sqrt(1 - c^2) xi
    with c = exp(-friction step_size / 2), one leapfrog step, another half refresh. With
    ``metropolis: true`` (default) the leapfrog step is accepted with probability min(1, exp(-dH))
    and the momentum flipped on rejection (generalized HMC: exact for exp(-E / T)); with false it
    is the unadjusted discretization (bias of order step_size^2). Momenta start fresh each call."""

    type_name = "underdamped_langevin"
    Config = UnderdampedParameters
    chain = staticmethod(underdamped_chain)
