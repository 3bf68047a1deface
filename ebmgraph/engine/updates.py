"""Parameter updates: each optimizer gets the gradient of its own losses with respect to its own
models' parameters only; all gradients of a phase are taken before any parameter moves."""

from __future__ import annotations

import torch

from ebmgraph.nodes.catalog import MODELS, OPTIMIZERS
from ebmgraph.nodes.ema import ema_update
from ebmgraph.nodes.registry import DerivedModelType
from ebmgraph.spec.schema import GraphSpec


class Updater:
    def __init__(self, spec: GraphSpec, models: dict[str, torch.nn.Module]):
        self.parameters: dict[str, list[torch.nn.Parameter]] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.clip: dict[str, float | None] = {}
        for name, opt in spec.optimizers.items():
            params = [p for model in opt.models for p in models[model].parameters()]
            self.parameters[name] = params
            self.optimizers[name] = OPTIMIZERS.get(opt.type).build(params, opt.config)
            self.clip[name] = opt.clip_grad_norm
        self.averages = [(models[name], models[m.config.of], m.config.decay) for name, m in spec.models.items()
                         if issubclass(MODELS.get(m.type), DerivedModelType)]

    def update(self, ctx, **losses: torch.Tensor) -> None:
        """Gradients of every optimizer's loss first, then the steps (Algorithm 1 of Dual-MCMC:
        all models learn from the same fixed copies)."""
        names = list(losses)
        gradients = {}
        for index, name in enumerate(names):
            gradients[name] = torch.autograd.grad(losses[name], self.parameters[name],
                                                  retain_graph=index < len(names) - 1, allow_unused=True)
        for name in names:
            for param, grad in zip(self.parameters[name], gradients[name]):
                param.grad = grad
            if self.clip[name] is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.parameters[name], self.clip[name])
                ctx.record(name, "grad_norm", norm)
            self.optimizers[name].step()

    def update_averages(self) -> None:
        for target, source, decay in self.averages:
            ema_update(target, source, decay)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
