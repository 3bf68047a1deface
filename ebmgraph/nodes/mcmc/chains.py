"""Chains of K steps from given states, on any per-sample energy: unadjusted Langevin (with the
differentiable last steps of Improved CD) and MALA. Each returns its final state and a ChainInfo;
the only randomness is drawn from the ``generator`` given (Langevin: one ``randn`` a step; MALA:
one ``randn`` then one ``rand`` a step)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Literal

import attrs
import torch

from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.freezing import frozen_parameters
from ebmgraph.nodes.mcmc.metropolis import MalaState, log_acceptance_ratio, metropolis_step
from ebmgraph.nodes.mcmc.proposal import (
    EnergyFunction, GradientFunction, clip_gradient, clipped_energy_and_gradient, langevin_proposal)

Differentiable = Literal["none", "last", "all"]

LogAcceptance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                         torch.Tensor]
"""log a(x -> y) per sample from (x, y, E(x), E(y), grad E(x), grad E(y))."""

Observer = Callable[[torch.Tensor], None]
"""Called with the chains' states after every step (evaluation diagnostics)."""


@attrs.frozen
class ChainInfo:
    """Per-sample energies at the chains' start and end, the last gradient they moved along, and
    MALA's acceptance rate (mean over steps and chains). None where not computed: no steps, a
    Langevin chain not asked for its end energy, acceptance of Langevin."""

    energy_start: torch.Tensor | None = None
    energy_end: torch.Tensor | None = None
    gradient: torch.Tensor | None = None
    acceptance: torch.Tensor | None = None


@attrs.frozen
class LangevinState:
    """The states after the last step as a constant (``position``), and the same states with a
    graph to the energy's parameters through the differentiable steps (``position`` itself when
    there are none)."""

    position: torch.Tensor
    differentiable_position: torch.Tensor


def langevin_chain(energy: EnergyFunction, init: torch.Tensor, parameters: LangevinParameters,
                   generator: torch.Generator, frozen: Iterable[torch.nn.Module] = (), *,
                   differentiable: Differentiable = "none", gradient: GradientFunction | None = None,
                   end_energy: bool = True, observe: Observer | None = None) -> tuple[LangevinState, ChainInfo]:
    """``parameters.steps`` steps of ``x <- x - a grad E(x) / T + b xi`` from ``init``, with the
    parameters of ``frozen`` switched off, except for the ``differentiable`` steps (none, the last,
    or all of them): those are recomputed with ``create_graph`` so that ``differentiable_position``
    has a graph to the energy's parameters (Improved CD eq. 7 and appendix D.2). ``gradient``
    gives the frozen steps' gradient (default: clipped as ``parameters`` say); ``end_energy``
    evaluates E at the final states for ``energy_end`` (one more energy call); ``observe`` is
    called with the states after each step."""
    drift, noise, clamp = parameters.drift, parameters.resolved()[1], parameters.clamp
    gradient = gradient or partial(clipped_energy_and_gradient, parameters=parameters)
    frozen = tuple(frozen)
    graph_steps = {"none": 0, "last": min(1, parameters.steps), "all": parameters.steps}[differentiable]
    x = init.detach()
    first = grad = None
    with frozen_parameters(*frozen):
        for _ in range(parameters.steps - graph_steps):
            current, grad = gradient(energy, x)
            first = current if first is None else first
            x = langevin_proposal(x, grad, drift, noise, generator, clamp)
            if observe is not None:
                observe(x)
    tracked = x
    for step in range(graph_steps):
        state = tracked.requires_grad_(True) if step == 0 else tracked
        current = energy(state)
        (grad,) = torch.autograd.grad(current.sum(), state, create_graph=True)
        first = current.detach() if first is None else first
        clipped = clip_gradient(grad, parameters.clip_grad_value, parameters.clip_grad_norm)
        tracked = langevin_proposal(state, clipped, drift, noise, generator, clamp)
        if observe is not None:
            observe(tracked.detach())
    x = tracked.detach()
    if grad is None:
        return LangevinState(x, x), ChainInfo()
    last = None
    if end_energy:
        with torch.no_grad(), frozen_parameters(*frozen):
            last = energy(x)
    return LangevinState(x, tracked if graph_steps else x), ChainInfo(first, last, grad.detach())


def mala_chain(energy: EnergyFunction, init: torch.Tensor, parameters: LangevinParameters,
               generator: torch.Generator, frozen: Iterable[torch.nn.Module] = (), *,
               gradient: GradientFunction | None = None, log_acceptance: LogAcceptance | None = None,
               observe: Observer | None = None) -> tuple[MalaState, ChainInfo]:
    """``parameters.steps`` MALA steps from ``init`` with the parameters of ``frozen`` switched off:
    the Langevin proposal ``y = x - a grad E(x) / T + b xi``, accepted with probability
    min(1, pi(y) q(x|y) / (pi(x) q(y|x))) for pi = exp(-E / T_eff); with ``clamp``, proposals
    outside the box are rejected. ``gradient`` (default: clipped as ``parameters`` say) and
    ``log_acceptance`` (default: ``log_acceptance_ratio`` of ``parameters``) may be replaced;
    ``observe`` is called with the states after each step.
    With zero steps the state holds ``init`` and no energy or gradient."""
    x = init.detach()
    if not parameters.steps:
        return MalaState(x, None, None), ChainInfo()
    drift, noise = parameters.drift, parameters.resolved()[1]
    gradient = gradient or partial(clipped_energy_and_gradient, parameters=parameters)
    log_acceptance = log_acceptance or partial(log_acceptance_ratio, drift=drift, noise=noise,
                                               temperature=parameters.effective_temperature)
    accepted = torch.zeros((), device=x.device)
    with frozen_parameters(*frozen):
        state = MalaState(x, *gradient(energy, x))
        first = state.energy
        for _ in range(parameters.steps):
            y = langevin_proposal(state.position, state.gradient, drift, noise, generator)
            proposal = MalaState(y, *gradient(energy, y))
            log_alpha = log_acceptance(state.position, y, state.energy, proposal.energy, state.gradient,
                                       proposal.gradient)
            state, accept = metropolis_step(state, proposal, log_alpha, generator, parameters.clamp)
            accepted = accepted + accept.float().mean()
            if observe is not None:
                observe(state.position)
    state = MalaState(state.position.detach(), state.energy, state.gradient)
    return state, ChainInfo(first, state.energy, state.gradient, accepted / parameters.steps)
