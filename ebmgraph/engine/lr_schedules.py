"""Learning-rate schedules: an optimizer's ``schedule`` pieces as one torch SequentialLR, stepped once
per training step (after all phases). Each piece is a factor of the optimizer's lr and starts from
it (SequentialLR's semantics); a last cosine piece is followed by a constant ``min_lr``."""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from ebmgraph.spec.lr_schedule import (
    CosineSchedule,
    ExponentialSchedule,
    LRSchedulePiece,
    StepSchedule,
    WarmupSchedule,
)

FOREVER = 2 ** 62  # total_iters of the constant after a final cosine: never reached


def _scheduler(optimizer: torch.optim.Optimizer, piece: LRSchedulePiece) -> lr_scheduler.LRScheduler:
    if isinstance(piece, WarmupSchedule):  # f at step 0, 1 at step steps - 1
        factor = 1 / piece.steps if piece.start_factor is None else piece.start_factor
        return lr_scheduler.LinearLR(optimizer, start_factor=factor, end_factor=1.0, total_iters=piece.steps - 1)
    if isinstance(piece, StepSchedule):
        return lr_scheduler.StepLR(optimizer, step_size=piece.every, gamma=piece.gamma)
    if isinstance(piece, ExponentialSchedule):
        return lr_scheduler.ExponentialLR(optimizer, gamma=piece.gamma)
    if isinstance(piece, CosineSchedule):
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=piece.steps, eta_min=piece.min_lr)
    raise TypeError(f"unknown learning-rate schedule piece {piece!r}")


def build_schedule(optimizer: torch.optim.Optimizer, pieces: list[LRSchedulePiece]) -> lr_scheduler.SequentialLR:
    """One SequentialLR over ``pieces`` with milestones at their cumulative ``steps``."""
    lr = optimizer.param_groups[0]["lr"]
    schedulers, milestones, start = [], [], 0
    for index, piece in enumerate(pieces):
        schedulers.append(_scheduler(optimizer, piece))
        if index < len(pieces) - 1 or isinstance(piece, CosineSchedule):
            start += piece.steps
            milestones.append(start)
    if isinstance(pieces[-1], CosineSchedule):  # torch's cosine would rise again after T_max
        factor = pieces[-1].min_lr / lr if lr > 0 else 1.0
        schedulers.append(lr_scheduler.ConstantLR(optimizer, factor=factor, total_iters=FOREVER))
    return lr_scheduler.SequentialLR(optimizer, schedulers, milestones)
