"""Parameter updates: each optimizer gets the gradient of its own losses with respect to its own
models' parameters only; all gradients of a phase are taken before any parameter moves. Learning-rate
schedules step once per training step, after every phase."""

from __future__ import annotations

import torch

from ebmgraph.engine.distributed import average_gradients
from ebmgraph.engine.lr_schedules import build_schedule
from ebmgraph.nodes.catalog import MODELS, OPTIMIZERS
from ebmgraph.nodes.ema import ema_update
from ebmgraph.nodes.registry import DerivedModelType
from ebmgraph.spec.lr_schedule import piece_dict
from ebmgraph.spec.schema import GraphSpec


class ScheduleStateError(ValueError):
    """A checkpoint's learning-rate schedules do not match the graph's."""


class Updater:
    """The optimizers of a graph; with ``world_size`` > 1 each gradient is averaged over the ranks
    before its optimizer steps, so every rank takes the same step."""

    def __init__(self, spec: GraphSpec, models: dict[str, torch.nn.Module], world_size: int = 1):
        self.world_size = world_size
        self.parameters: dict[str, list[torch.nn.Parameter]] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.clip: dict[str, float | None] = {}
        for name, opt in spec.optimizers.items():
            params = [p for model in opt.models for p in models[model].parameters()]
            self.parameters[name] = params
            self.optimizers[name] = OPTIMIZERS.get(opt.type).build(params, opt.config)
            self.clip[name] = opt.clip_grad_norm
        self.schedule_pieces = {name: [piece_dict(piece) for piece in opt.schedule]
                                for name, opt in spec.optimizers.items() if opt.schedule}
        self.schedules = {name: build_schedule(self.optimizers[name], spec.optimizers[name].schedule)
                          for name in self.schedule_pieces}
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
            if self.world_size > 1:
                gradients[name] = average_gradients(gradients[name], self.world_size)
        for name in names:
            for param, grad in zip(self.parameters[name], gradients[name]):
                param.grad = grad
            if self.clip[name] is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.parameters[name], self.clip[name])
                ctx.record(name, "grad_norm", norm)
            if name in self.schedules:
                ctx.record(name, "lr", self.optimizers[name].param_groups[0]["lr"])
            self.optimizers[name].step()

    def step_schedules(self) -> None:
        """Advance every learning-rate schedule by one training step (called once, after all phases)."""
        for schedule in self.schedules.values():
            schedule.step()

    def update_averages(self) -> None:
        for target, source, decay in self.averages:
            ema_update(target, source, decay)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore each optimizer's state (moments, step counts); its hyper-parameters stay the
        graph's, so ``--set optimizers.NAME.lr=...`` on resume takes effect (a scheduled learning
        rate follows its restored schedule instead)."""
        for name, opt in self.optimizers.items():
            configured = [{key: value for key, value in group.items() if key != "params"} for group in opt.param_groups]
            opt.load_state_dict(state[name])
            for group, settings in zip(opt.param_groups, configured):
                group.update({k: v for k, v in settings.items()
                              if name not in self.schedule_pieces or k not in ("lr", "initial_lr")})

    def schedules_state_dict(self) -> dict:
        """Plain data: each scheduled optimizer's pieces (as written) and its SequentialLR state."""
        return {name: {"pieces": self.schedule_pieces[name], "state": schedule.state_dict()}
                for name, schedule in self.schedules.items()}

    def load_schedules_state_dict(self, state: dict) -> None:
        """Restore the schedules (after the optimizers); ScheduleStateError when the checkpoint's
        schedules are not the graph's (a schedule cannot be added, dropped or changed on resume)."""
        for name in sorted(set(state) | set(self.schedules)):
            saved = state.get(name, {}).get("pieces")
            if saved != self.schedule_pieces.get(name):
                now = self.schedule_pieces.get(name)
                raise ScheduleStateError(f"optimizer '{name}': the checkpoint was written with learning-rate "
                                         f"schedule {_shown(saved)}, the graph has {_shown(now)}; a schedule "
                                         "cannot change when a run resumes (start a new run instead)")
        for name, schedule in self.schedules.items():
            schedule.load_state_dict(state[name]["state"])


def _shown(pieces: list[dict] | None) -> str:
    if not pieces:
        return "none"
    return ", then ".join("{" + ", ".join(f"{key}: {value}" for key, value in piece.items() if value is not None) + "}"
                          for piece in pieces)
