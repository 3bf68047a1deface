"""Hamiltonian chains on exp(-E / T): HMC (a full momentum refresh, L leapfrog steps, one
Metropolis test) and underdamped Langevin (a partial momentum refresh around one leapfrog step,
OBABO, with an optional Metropolis test that flips the momentum on rejection: Horowitz's
generalized HMC, exact for any step size). Unit mass: H(x, p) = E(x) / T + |p|^2 / 2, so
p ~ N(0, I). Chains start with fresh momenta: a bank stores positions only. Randomness is drawn
from the ``generator`` given (HMC: one ``randn`` then one ``rand`` a step; underdamped: ``randn``,
``rand`` when adjusted, ``randn``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs
import torch

from ebmgraph.nodes.config_checks import at_least_one, clamp_problems
from ebmgraph.nodes.mcmc.chains import ChainInfo, Observer
from ebmgraph.nodes.mcmc.freezing import frozen_parameters
from ebmgraph.nodes.mcmc.metropolis import MalaState, metropolis_step
from ebmgraph.nodes.mcmc.proposal import EnergyFunction, GradientFunction, energy_and_gradient

@attrs.define
class HamiltonianParameters:
    """``steps`` transitions of leapfrog step ``step_size`` (h) on exp(-E / ``temperature``);
    with ``clamp`` the target is restricted to the box (moves outside it are rejected).
    ``compile`` runs the energy and its gradient through ``torch.compile``."""

    steps: int = 10
    step_size: float = 0.1
    temperature: float = 1.0
    clamp: tuple[float, float] | None = None
    compile: bool = False

    @property
    def effective_temperature(self) -> float:
        """The chain's target is exp(-E / T) exactly: T_eff = T."""
        return self.temperature

    def describe(self) -> str:
        return (f"{self.steps} steps, leapfrog step h={self.step_size:.6g}, T={self.temperature:.6g}, "
                f"effective T={self.effective_temperature:.6g}")

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for every unusable value."""
        out = [(key, f"must be > 0, found {getattr(self, key)}") for key in ("step_size", "temperature")
               if not getattr(self, key) > 0]
        if self.steps < 0:
            out.append(("steps", f"must be >= 0, found {self.steps}"))
        return out + clamp_problems(self.clamp)


@attrs.define
class HmcParameters(HamiltonianParameters):
    """HMC: ``leapfrog_steps`` (L) leapfrog steps per transition."""

    leapfrog_steps: int = 5

    def describe(self) -> str:
        return f"{super().describe()}, {self.leapfrog_steps} leapfrog steps a transition"

    def problems(self) -> list[tuple[str, str]]:
        return super().problems() + at_least_one(self, "leapfrog_steps")


@attrs.define
class UnderdampedParameters(HamiltonianParameters):
    """Underdamped Langevin: ``friction`` (gamma) sets the momentum kept by each half refresh,
    c = exp(-gamma h / 2); ``metropolis`` adds the test that makes the chain exact."""

    friction: float = 1.0
    metropolis: bool = True

    def describe(self) -> str:
        test = "Metropolis-corrected" if self.metropolis else "unadjusted (bias of order h^2)"
        return f"{super().describe()}, friction {self.friction:.6g}, {test}"

    def problems(self) -> list[tuple[str, str]]:
        out = super().problems()
        if not self.friction >= 0:
            out.append(("friction", f"must be >= 0, found {self.friction}"))
        if self.clamp is not None and not self.metropolis:
            out.append(("clamp", "a box needs metropolis: true (the test rejects the moves that leave it)"))
        return out


def leapfrog(state: MalaState, momentum: torch.Tensor, energy: EnergyFunction, gradient: GradientFunction,
             step_size: float, temperature: float, steps: int) -> tuple[MalaState, torch.Tensor]:
    """``steps`` leapfrog steps of H = E / T + |p|^2 / 2 from (``state``, ``momentum``), one new
    gradient per step: p -= h/2 grad E / T; x += h p; p -= h/2 grad E / T."""
    x, grad, value = state.position, state.gradient, state.energy
    p = momentum - 0.5 * step_size * grad / temperature
    for step in range(steps):
        x = x + step_size * p
        value, grad = gradient(energy, x)
        p = p - (step_size if step < steps - 1 else 0.5 * step_size) * grad / temperature
    return MalaState(x, value, grad), p


def _kinetic(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * p.flatten(1).pow(2).sum(1)


def _metropolis(current: MalaState, p: torch.Tensor, proposal: MalaState, q: torch.Tensor,
                temperature: float, generator: torch.Generator, clamp) -> tuple[MalaState, torch.Tensor]:
    """Accept (``proposal``, ``q``) with probability min(1, exp(H(current, p) - H(proposal, q)))."""
    log_alpha = (current.energy - proposal.energy) / temperature + _kinetic(p) - _kinetic(q)
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
    return metropolis_step(current, proposal, log_alpha, generator, clamp)


def _fresh_momentum(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _refresh(p: torch.Tensor, keep: float, generator: torch.Generator) -> torch.Tensor:
    """p <- c p + sqrt(1 - c^2) xi, which leaves N(0, I) invariant."""
    return keep * p + math.sqrt(1 - keep**2) * _fresh_momentum(p, generator)


def _chain(transition, energy: EnergyFunction, init: torch.Tensor, parameters: HamiltonianParameters,
           generator: torch.Generator, frozen: Iterable[torch.nn.Module], gradient: GradientFunction | None,
           observe: Observer | None):
    """Run ``transition(state, momentum, gradient) -> (state, momentum, accepted mask)`` for
    ``parameters.steps`` steps from ``init``; the first transition gets momentum None (draw one)."""
    x = init.detach()
    if not parameters.steps:
        return MalaState(x, None, None), ChainInfo()
    gradient = gradient or energy_and_gradient
    accepted = torch.zeros((), device=x.device)
    with frozen_parameters(*frozen):
        state = MalaState(x, *gradient(energy, x))
        first, p = state.energy, None
        for _ in range(parameters.steps):
            state, p, accept = transition(state, p, gradient)
            accepted = accepted + accept.float().mean()
            if observe is not None:
                observe(state.position)
    state = MalaState(state.position.detach(), state.energy, state.gradient)
    return state, ChainInfo(first, state.energy, state.gradient, accepted / parameters.steps)


def hmc_chain(energy: EnergyFunction, init: torch.Tensor, parameters: HmcParameters, generator: torch.Generator,
              frozen: Iterable[torch.nn.Module] = (), *, gradient: GradientFunction | None = None,
              observe: Observer | None = None):
    """``parameters.steps`` HMC transitions from ``init``: p ~ N(0, I), L leapfrog steps, accepted
    with probability min(1, exp(-dH)). Returns (MalaState, ChainInfo) like ``mala_chain``."""
    c = parameters

    def transition(state, _, gradient):
        p = _fresh_momentum(state.position, generator)
        proposal, q = leapfrog(state, p, energy, gradient, c.step_size, c.temperature, c.leapfrog_steps)
        state, accept = _metropolis(state, p, proposal, q, c.temperature, generator, c.clamp)
        return state, p, accept

    return _chain(transition, energy, init, parameters, generator, frozen, gradient, observe)


def underdamped_chain(energy: EnergyFunction, init: torch.Tensor, parameters: UnderdampedParameters,
                      generator: torch.Generator, frozen: Iterable[torch.nn.Module] = (), *,
                      gradient: GradientFunction | None = None, observe: Observer | None = None):
    """``parameters.steps`` OBABO steps from ``init``: a half refresh p <- c p + sqrt(1 - c^2) xi,
    one leapfrog step (with ``metropolis``: accepted with probability min(1, exp(-dH)), the
    momentum flipped on rejection), another half refresh. Returns (MalaState, ChainInfo); the
    acceptance is 1 for the unadjusted chain, whose moves are all taken."""
    c = parameters
    keep = math.exp(-c.friction * c.step_size / 2)

    def transition(state, p, gradient):
        # a fresh N(0, I) momentum is already what a refresh leaves invariant
        p = _fresh_momentum(state.position, generator) if p is None else _refresh(p, keep, generator)
        proposal, q = leapfrog(state, p, energy, gradient, c.step_size, c.temperature, 1)
        if c.metropolis:
            state, accept = _metropolis(state, p, proposal, q, c.temperature, generator, c.clamp)
            mask = accept.view(-1, *([1] * (p.dim() - 1)))
            p = torch.where(mask, q, -p)
        else:
            state, p, accept = proposal, q, torch.ones(len(q), dtype=torch.bool, device=q.device)
        return state, _refresh(p, keep, generator), accept

    return _chain(transition, energy, init, parameters, generator, frozen, gradient, observe)
