"""The Langevin proposal ``x - a grad E(x) / T + b xi`` (ebmgraph's single parameterization, see
``nodes/langevin_parameters.py``) and the energy gradients it moves along."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ebmgraph.nodes.langevin_parameters import LangevinParameters

EnergyFunction = Callable[[torch.Tensor], torch.Tensor]
"""A per-sample energy E(x) of a batch of states."""

GradientFunction = Callable[[EnergyFunction, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(E(x), the gradient a chain moves along) for an energy and a batch of states."""


def energy_and_gradient(energy: EnergyFunction, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) per sample and its gradient with respect to x."""
    x = x.detach().requires_grad_(True)
    e = energy(x)
    (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad


def clip_gradient(grad: torch.Tensor, value: float | None, norm: float | None) -> torch.Tensor:
    """Clip by value, then rescale each sample's gradient to at most ``norm`` (L2 over its dims)."""
    if value is not None:
        grad = grad.clamp(-value, value)
    if norm is not None:
        sample_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (norm / sample_norm).clamp(max=1.0)
        grad = grad * scale.view(-1, *([1] * (grad.dim() - 1)))
    return grad


def energy_and_clipped_gradient(energy: EnergyFunction, x: torch.Tensor, value: float | None, norm: float | None
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) per sample and its gradient clipped by ``value``, then to per-sample ``norm``."""
    energies, grad = energy_and_gradient(energy, x)
    return energies, clip_gradient(grad, value, norm)


def clipped_energy_and_gradient(energy: EnergyFunction, x: torch.Tensor, parameters: LangevinParameters
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) per sample and its gradient clipped as ``parameters`` say (value, then per-sample norm)."""
    return energy_and_clipped_gradient(energy, x, parameters.clip_grad_value, parameters.clip_grad_norm)


def langevin_proposal(x: torch.Tensor, grad: torch.Tensor, drift: float, noise: float,
                      generator: torch.Generator, clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """One move ``x - drift * grad + noise * xi`` with xi ~ N(0, I) drawn from ``generator`` (one
    ``randn``), then clamped to the box [low, high] when ``clamp`` is given. ``drift`` is a / T."""
    xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x = x - drift * grad + noise * xi
    return x.clamp(*clamp) if clamp is not None else x
