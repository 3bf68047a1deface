"""MCMC transition kernels on an energy: unadjusted Langevin and MALA on the same proposal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from typing import Literal

import attrs
import torch
from torch.nn.utils import parametrize

from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.ports import SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.node import Kernel
from ebmgraph.nodes.registry import NODES

Differentiable = Literal["none", "last", "all"]


@contextlib.contextmanager
def frozen_parameters(*modules: torch.nn.Module) -> Iterator[None]:
    """Switch parameter gradients off while sampling: no accumulation, and a cheaper backward.
    Parametrized weights (spectral norm) are computed once for the whole chain, not every step."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        with parametrize.cached():
            yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


def energy_and_gradient(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
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


def chain_config(config: LangevinParameters, steps: int) -> LangevinParameters:
    """``config`` for plain sampling chains of ``steps`` steps (no graph to the parameters)."""
    changes = {"steps": steps}
    if "differentiable" in attrs.fields_dict(type(config)):
        changes["differentiable"] = "none"
    return attrs.evolve(config, **changes)


class _Kernel(Kernel):
    """Base of kernels: ``langevin`` runs the chain on any per-sample energy function of the state,
    with every bound model frozen."""

    Config = LangevinParameters
    outputs = (Port("x", SAMPLE, "states after the last step (a constant for parameter learning)",
                    stop_gradient=True),)

    def _gradient(self, energy: Callable, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        value, grad = energy_and_gradient(energy, x)
        return value, clip_gradient(grad, c.clip_grad_value, c.clip_grad_norm)

    def langevin(self, ctx, init: torch.Tensor, energy: Callable[[torch.Tensor], torch.Tensor],
                 differentiable: Differentiable = "none") -> tuple[torch.Tensor, torch.Tensor]:
        """K steps of ``x <- x - a grad E(x) / T + b xi`` from ``init``: (the states as a constant,
        the same states with a graph to the energy's parameters through the ``differentiable``
        steps: none, the last, or all of them; Improved CD eq. 7 and appendix D.2)."""
        c = self.config
        drift, noise = c.drift, c.resolved()[1]
        generator = ctx.generator(self.name)
        graph_steps = {"none": 0, "last": min(1, c.steps), "all": c.steps}[differentiable]
        x = init.detach()
        first = grad = None
        with frozen_parameters(*self.models.values()):
            for _ in range(c.steps - graph_steps):
                current, grad = self._gradient(energy, x)
                first = current if first is None else first
                x = self._move(x, grad, generator, drift, noise)
        tracked = x
        for step in range(graph_steps):
            state = tracked.requires_grad_(True) if step == 0 else tracked
            current = energy(state)
            (grad,) = torch.autograd.grad(current.sum(), state, create_graph=True)
            first = current.detach() if first is None else first
            tracked = self._move(state, clip_gradient(grad, c.clip_grad_value, c.clip_grad_norm), generator, drift, noise)
        x = tracked.detach()
        if grad is not None and ctx.diagnostics_wanted:
            with torch.no_grad(), frozen_parameters(*self.models.values()):
                self._record(ctx, first, energy(x), grad.detach())
        return x, tracked if graph_steps else x

    def _move(self, x: torch.Tensor, grad: torch.Tensor, generator: torch.Generator, drift: float, noise: float
              ) -> torch.Tensor:
        """One step ``x - drift * grad + noise * xi`` given the (clipped) energy gradient, then the clamp."""
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x - drift * grad + noise * xi
        clamp = self.config.clamp
        return x.clamp(*clamp) if clamp is not None else x

    def _record(self, ctx, first_energy: torch.Tensor, last_energy: torch.Tensor, grad: torch.Tensor) -> None:
        """Mean energy at the chains' start and end, and the mean per-sample norm of the last gradient."""
        ctx.record(self.name, "energy_start", first_energy.mean())
        ctx.record(self.name, "energy_end", last_energy.mean())
        ctx.record(self.name, "grad_norm", grad.flatten(1).norm(dim=1).mean())


class _EnergyKernel(_Kernel):
    """A kernel on the energy model bound to its ``energy`` port."""

    inputs = (Port("energy", model_ref("energy"), "the energy E(x) to sample from"),
              Port("init", SAMPLE, "initial states of the chains"))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        self.check_energy_input("init", inputs["init"])
        return {"x": Value(SAMPLE, inputs["init"].shape)}


@attrs.define
class LangevinConfig(LangevinParameters):
    """Langevin parameters; ``differentiable`` (none, last or all) chooses the steps recomputed
    with a graph to the energy's parameters for the ``x_differentiable`` output."""

    differentiable: Differentiable = "none"


@NODES.register
class Langevin(_EnergyKernel):
    """Unadjusted Langevin dynamics, K steps of ``x <- x - a grad E(x) / T + b xi`` (ebmgraph's single
    parameterization; see ``ebmgraph check`` for the resolved a, b and effective temperature),
    with optional gradient clipping (by value or per-sample norm) and state clamping.
    ``x_differentiable`` holds the same states, differentiable with respect to the energy's
    parameters through the last step (``differentiable: last``, Improved CD eq. 7) or every step
    (``all``, appendix D.2); with ``none`` it is the constant ``x``."""

    type_name = "langevin"
    Config = LangevinConfig
    outputs = (*_Kernel.outputs,
               Port("x_differentiable", SAMPLE, "the states with a graph to the energy's parameters"))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        out = super().infer(inputs)
        return {**out, "x_differentiable": out["x"]}

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        x, tracked = self.langevin(ctx, init, self.models["energy"], self.config.differentiable)
        return {"x": x, "x_differentiable": tracked}


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
class Mala(_EnergyKernel):
    """Metropolis-adjusted Langevin: the Langevin proposal ``y = x - a grad E(x) / T + b xi`` accepted
    with probability min(1, pi(y) q(x|y) / (pi(x) q(y|x))) for pi = exp(-E / T_eff). With ``clamp``
    the target is restricted to the box: proposals outside it are rejected."""

    type_name = "mala"
    Config = MalaConfig

    def log_acceptance(self, x, y, energy_x, energy_y, grad_x, grad_y) -> torch.Tensor:
        """log pi(y) + log q(x|y) - log pi(x) - log q(y|x), per sample."""
        c = self.config
        _, noise, _ = c.resolved()
        drift = c.drift
        log_q_forward = -((y - x + drift * grad_x).flatten(1) ** 2).sum(1) / (2 * noise**2)
        log_q_backward = -((x - y + drift * grad_y).flatten(1) ** 2).sum(1) / (2 * noise**2)
        return (energy_x - energy_y) / c.effective_temperature + log_q_backward - log_q_forward

    def __call__(self, ctx, init: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        _, noise, _ = c.resolved()
        generator = ctx.generator(self.name)
        x = init.detach()
        accepted = torch.zeros((), device=x.device)
        first = grad_x = None
        energy = self.models["energy"]
        with frozen_parameters(energy):
            energy_x, grad_x = self._gradient(energy, x) if c.steps else (None, None)
            first = energy_x
            for _ in range(c.steps):
                xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                y = x - c.drift * grad_x + noise * xi
                energy_y, grad_y = self._gradient(energy, y)
                log_alpha = self.log_acceptance(x, y, energy_x, energy_y, grad_x, grad_y)
                if c.clamp is not None:
                    inside = ((y >= c.clamp[0]) & (y <= c.clamp[1])).flatten(1).all(1)
                    log_alpha = torch.where(inside, log_alpha, torch.full_like(log_alpha, -torch.inf))
                uniform = torch.rand(log_alpha.shape, generator=generator, device=x.device)
                accept = torch.log(uniform) < log_alpha
                mask = accept.view(-1, *([1] * (x.dim() - 1)))
                x = torch.where(mask, y, x)
                energy_x = torch.where(accept, energy_y, energy_x)
                grad_x = torch.where(mask, grad_y, grad_x)
                accepted = accepted + accept.float().mean()
        if c.steps:
            self._record(ctx, first, energy_x, grad_x)
            ctx.record(self.name, "acceptance", accepted / c.steps)
        return {"x": x.detach()}
