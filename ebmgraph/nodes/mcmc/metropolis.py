"""MALA's Metropolis correction of the Langevin proposal q(y|x) = N(y; x - a grad E(x) / T, b^2 I)
for the target pi = exp(-E / T_eff), T_eff = T b^2 / (2 a)."""

from __future__ import annotations

import attrs
import torch


@attrs.frozen
class MalaState:
    """A MALA chain's states with their energies E and the (clipped) gradients the proposal uses
    (None for a chain that took no steps)."""

    position: torch.Tensor
    energy: torch.Tensor | None
    gradient: torch.Tensor | None


def log_acceptance_ratio(x: torch.Tensor, y: torch.Tensor, energy_x: torch.Tensor, energy_y: torch.Tensor,
                         grad_x: torch.Tensor, grad_y: torch.Tensor, drift: float, noise: float,
                         temperature: float) -> torch.Tensor:
    """log pi(y) + log q(x|y) - log pi(x) - log q(y|x) per sample, for pi = exp(-E / ``temperature``)
    (the effective temperature) and q(y|x) = N(y; x - drift grad E(x), noise^2 I)."""
    log_q_forward = -((y - x + drift * grad_x).flatten(1) ** 2).sum(1) / (2 * noise**2)
    log_q_backward = -((x - y + drift * grad_y).flatten(1) ** 2).sum(1) / (2 * noise**2)
    return (energy_x - energy_y) / temperature + log_q_backward - log_q_forward


def inside_box(x: torch.Tensor, clamp: tuple[float, float]) -> torch.Tensor:
    """Per sample: every coordinate within [low, high]."""
    return ((x >= clamp[0]) & (x <= clamp[1])).flatten(1).all(1)


def metropolis_step(current: MalaState, proposal: MalaState, log_acceptance: torch.Tensor,
                    generator: torch.Generator, clamp: tuple[float, float] | None = None
                    ) -> tuple[MalaState, torch.Tensor]:
    """Accept each sample's proposal when log u < ``log_acceptance`` with u ~ U(0, 1) drawn from
    ``generator`` (one ``rand``). With ``clamp`` the target is restricted to the box, so proposals
    outside it are rejected. Returns (the next state, the per-sample acceptance mask)."""
    if clamp is not None:
        log_acceptance = torch.where(inside_box(proposal.position, clamp), log_acceptance,
                                     torch.full_like(log_acceptance, -torch.inf))
    x = current.position
    uniform = torch.rand(log_acceptance.shape, generator=generator, device=x.device)
    accept = torch.log(uniform) < log_acceptance
    mask = accept.view(-1, *([1] * (x.dim() - 1)))
    return MalaState(torch.where(mask, proposal.position, x),
                     torch.where(accept, proposal.energy, current.energy),
                     torch.where(mask, proposal.gradient, current.gradient)), accept
