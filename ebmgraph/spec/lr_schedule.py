"""An optimizer's ``schedule:``: learning-rate pieces run in sequence, each a factor of the optimizer's
``lr`` (the engine builds them as torch.optim.lr_scheduler objects in one SequentialLR)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs

from ebmgraph.errors import Diagnostic
from ebmgraph.spec.convert import describe, structure
from ebmgraph.spec.source import Path_, Source
from ebmgraph.spec.suggest import did_you_mean, one_of


def _positive(piece, key: str, least: int = 1) -> list[tuple[str, str]]:
    value = getattr(piece, key)
    return [(key, f"must be >= {least}, found {value}")] if value is not None and value < least else []


def _decay(piece) -> list[tuple[str, str]]:
    ok = math.isfinite(piece.gamma) and 0 < piece.gamma <= 1
    return [] if ok else [("gamma", f"must be in (0, 1] (the factor of each decay), found {piece.gamma}")]


@attrs.define
class WarmupSchedule:
    """Linear warm-up (LinearLR): ``start_factor``·lr at the first step (default 1/steps), rising
    linearly to lr at the ``steps``-th; lr after."""

    type_name: ClassVar[str] = "warmup"
    steps: int
    start_factor: float | None = None

    def problems(self) -> list[tuple[str, str]]:
        out = _positive(self, "steps", 2)
        if self.start_factor is not None and not 0 < self.start_factor <= 1:
            out.append(("start_factor", f"must be in (0, 1], found {self.start_factor}"))
        return out

    def describe(self) -> str:
        start = "" if self.start_factor is None else f" from {self.start_factor:g} x lr"
        return f"linear warm-up{start} over {self.steps} steps"


@attrs.define
class StepSchedule:
    """Step decay (StepLR): lr times ``gamma`` every ``every`` steps."""

    type_name: ClassVar[str] = "step"
    every: int
    gamma: float
    steps: int | None = None

    def problems(self) -> list[tuple[str, str]]:
        return _positive(self, "every") + _decay(self) + _positive(self, "steps")

    def describe(self) -> str:
        return f"x{self.gamma:g} every {self.every} steps"


@attrs.define
class ExponentialSchedule:
    """Exponential decay (ExponentialLR): lr times ``gamma`` every step."""

    type_name: ClassVar[str] = "exponential"
    gamma: float
    steps: int | None = None

    def problems(self) -> list[tuple[str, str]]:
        return _decay(self) + _positive(self, "steps")

    def describe(self) -> str:
        return f"x{self.gamma:g} every step"


@attrs.define
class CosineSchedule:
    """Cosine annealing (CosineAnnealingLR) from lr to ``min_lr`` over ``steps`` steps; ``min_lr`` after."""

    type_name: ClassVar[str] = "cosine"
    steps: int
    min_lr: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        out = _positive(self, "steps")
        if not (math.isfinite(self.min_lr) and self.min_lr >= 0):
            out.append(("min_lr", f"must be a finite number >= 0, found {self.min_lr}"))
        return out

    def describe(self) -> str:
        return f"cosine annealing to {self.min_lr:g} over {self.steps} steps"


LRSchedulePiece = WarmupSchedule | StepSchedule | ExponentialSchedule | CosineSchedule
SCHEDULE_TYPES: dict[str, type] = {cls.type_name: cls for cls in (WarmupSchedule, StepSchedule, ExponentialSchedule,
                                                                  CosineSchedule)}


def piece_dict(piece: LRSchedulePiece) -> dict:
    """A piece as plain data, as a graph file writes it."""
    return {"type": piece.type_name, **attrs.asdict(piece)}


def schedule_value(pieces: list[LRSchedulePiece]) -> Any:
    """The ``schedule:`` value of ``pieces``: null, one mapping, or a list of mappings."""
    if not pieces:
        return None
    return piece_dict(pieces[0]) if len(pieces) == 1 else [piece_dict(piece) for piece in pieces]


def describe_schedule(pieces: list[LRSchedulePiece], lr: float | None) -> str:
    """One line: ``lr 0.0001: linear warm-up over 2000 steps, then constant``."""
    parts = []
    for index, piece in enumerate(pieces):
        text = piece.describe()
        if getattr(piece, "steps", None) is not None and not isinstance(piece, (WarmupSchedule, CosineSchedule)):
            text += f" for {piece.steps} steps"
        if index and not isinstance(pieces[index - 1], WarmupSchedule):
            text = "from lr again, " + text
        parts.append(text)
    last = pieces[-1]
    if isinstance(last, WarmupSchedule):
        parts.append("constant")
    elif isinstance(last, CosineSchedule):
        parts.append(f"constant at {last.min_lr:g}")
    else:
        parts[-1] += " to the end"
    text = ", then ".join(parts)
    return text if lr is None else f"lr {lr:g}: {text}"


def parse_schedule(raw: Any, src: Source, path: Path_, errors: list[Diagnostic],
                   lr: float | None = None) -> list[LRSchedulePiece]:
    """The pieces of ``schedule:`` value ``raw`` (null, one mapping or a list); problems become
    located diagnostics in ``errors``. ``lr`` is the optimizer's, when its type has one."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        bodies = [(raw, path)]
    elif isinstance(raw, list):
        bodies = [(body, path + (index,)) for index, body in enumerate(raw)]
    else:
        errors.append(src.diagnostic(path, "expected a schedule mapping {type: ...} or a list of them, found "
                                           f"{describe(raw)}"))
        return []
    pieces = [_piece(body, where, src, errors) for body, where in bodies]
    if any(piece is None for piece in pieces):
        return []
    for index, (piece, (body, where)) in enumerate(zip(pieces, bodies)):
        last = index == len(pieces) - 1
        if not last and getattr(piece, "steps", None) is None:
            errors.append(src.diagnostic(where, f"piece {index + 1} of {len(pieces)} needs 'steps': how many "
                                                "training steps it lasts before the next piece starts"))
        if last and isinstance(piece, (StepSchedule, ExponentialSchedule)) and piece.steps is not None:
            errors.append(src.diagnostic(where + ("steps",), f"a {piece.type_name} decay that is the last piece "
                                                             "runs to the end of training; give 'steps' only to a "
                                                             "piece that another piece follows"))
        if isinstance(piece, CosineSchedule) and lr is not None and piece.min_lr > lr:
            errors.append(src.diagnostic(where + ("min_lr",), f"must be at most the optimizer's lr {lr:g}, "
                                                              f"found {piece.min_lr:g}"))
    return pieces


def _piece(body: Any, path: Path_, src: Source, errors: list[Diagnostic]) -> LRSchedulePiece | None:
    names = list(SCHEDULE_TYPES)
    if not isinstance(body, dict):
        errors.append(src.diagnostic(path, f"expected a schedule mapping with a 'type' key, found {describe(body)}"))
        return None
    type_name = body.get("type")
    if type_name is None:
        errors.append(src.diagnostic(path, f"missing required key 'type' (one of the schedule types: {one_of(names)})"))
        return None
    cls = SCHEDULE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        shown = f"'{type_name}'" if isinstance(type_name, str) else describe(type_name)
        errors.append(src.diagnostic(path + ("type",), f"unknown schedule type {shown}"
                                                       f"{did_you_mean(type_name, names)}; schedule types: "
                                                       f"{one_of(names)}"))
        return None
    allowed = {field.name for field in attrs.fields(cls)} | {"type"}
    unknown = [key for key in body if key not in allowed]
    for key in unknown:
        errors.append(src.diagnostic(path + (key,), f"unknown key '{key}' for schedule type '{type_name}'"
                                                    f"{did_you_mean(key, allowed)}; expected one of {one_of(allowed)}",
                                     key=True))
    missing = [field.name for field in attrs.fields(cls) if field.default is attrs.NOTHING and field.name not in body]
    for key in missing:
        errors.append(src.diagnostic(path + (key,), f"missing required key '{key}' for schedule type '{type_name}'"))
    if missing:
        return None
    piece = structure(cls, {k: v for k, v in body.items() if k != "type" and k in allowed}, src, path, errors)
    if piece is None:
        return None
    problems = piece.problems()
    for key, message in problems:
        errors.append(src.diagnostic(path + (key,), message, key=key not in body))
    return None if problems or unknown else piece
