"""``compile: true`` on a kernel: E(x) and its (clipped) input gradient traced as one graph with
``torch.func.grad_and_value`` and compiled with ``torch.compile``. The energy's parameters are
inputs of the compiled graph, not constants, so one compilation serves every training step."""

from __future__ import annotations

import functools

import torch

from ebmgraph.nodes.mcmc.proposal import EnergyFunction, GradientFunction, clip_gradient

#: ``torch.compile`` modes (``train.compile_mode``); ``reduce-overhead`` replays CUDA graphs on GPUs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def traced_energy_and_gradient(energy: EnergyFunction, x: torch.Tensor, value: float | None, norm: float | None
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) per sample and its input gradient, clipped by ``value`` then per-sample ``norm``, in a
    form ``torch.compile`` traces whole (``torch.autograd.grad`` would break the graph)."""
    def total(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energies = energy(y)
        return energies.sum(), energies

    grad, (_, energies) = torch.func.grad_and_value(total, has_aux=True)(x)
    return energies.detach(), clip_gradient(grad, value, norm)


@functools.cache
def _compiled(mode: str):
    return torch.compile(traced_energy_and_gradient, mode=mode)


def compiled_gradient(mode: str, value: float | None, norm: float | None) -> GradientFunction:
    """The chain's gradient function, compiled in ``mode``. CUDA graphs (``reduce-overhead``)
    overwrite their outputs at the next replay, so those outputs are copied out."""
    function = _compiled(mode)

    def gradient(energy: EnergyFunction, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mode != "reduce-overhead":
            return function(energy, x.detach(), value, norm)
        torch.compiler.cudagraph_mark_step_begin()
        energies, grad = function(energy, x.detach(), value, norm)
        return energies.clone(), grad.clone()

    return gradient
