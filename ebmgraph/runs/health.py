"""Kernel health during training: a kernel whose chains no longer move (a MALA kernel that
rejects almost every proposal, a Langevin chain pinned in place) looks like any other run in its
losses. Each logging window, every kernel's mean acceptance and mobility (``NODE/acceptance``,
``NODE/mobility``: docs/concepts.md) are compared with a floor; the progress bar shows a health
mark per kernel and the first fall below a floor is warned about once per kernel."""

from __future__ import annotations

from collections import defaultdict

import torch

ACCEPTANCE_FLOOR = 0.01
MOBILITY_FLOOR = 0.01


class KernelHealth:
    """Collects each kernel's acceptance and mobility over a logging window; ``marks`` holds the
    last window's verdict per kernel (``ok`` or ``stuck``)."""

    def __init__(self, acceptance_floor: float = ACCEPTANCE_FLOOR, mobility_floor: float = MOBILITY_FLOOR):
        self.floors = {"acceptance": acceptance_floor, "mobility": mobility_floor}
        self.window: dict[tuple[str, str], list[torch.Tensor]] = defaultdict(list)
        self.warned: set[str] = set()
        self.marks: dict[str, str] = {}

    def observe(self, diagnostics: dict) -> None:
        for key, value in diagnostics.items():
            node, _, measure = key.rpartition("/")
            if measure in self.floors:
                self.window[(node, measure)].append(torch.as_tensor(value, dtype=torch.float32))

    def close_window(self, step: int) -> list[str]:
        """Warnings for the window that ends at ``step`` (each kernel warned about once), then a new window."""
        warnings, marks = [], {}
        for (node, measure), values in self.window.items():
            mean, floor = float(torch.stack(values).mean()), self.floors[measure]
            stuck = mean < floor
            marks[node] = "stuck" if stuck or marks.get(node) == "stuck" else "ok"
            if stuck and node not in self.warned:
                self.warned.add(node)
                warnings.append(f"step {step}: kernel '{node}' {_symptom(measure, mean, floor, len(values))}: its "
                                f"chains have stopped moving; {_remedy(measure)}")
        self.marks = marks
        self.window.clear()
        return warnings


def _symptom(measure: str, mean: float, floor: float, steps: int) -> str:
    if measure == "acceptance":
        return f"accepted {mean:.2%} of its MALA proposals over the last {steps} steps (below {floor:.0%})"
    return (f"moved its chains {mean:.2%} of the distance its noise alone would over the last {steps} steps "
            f"(mobility below {floor:.0%})")


def _remedy(measure: str) -> str:
    return "lower its step size" if measure == "acceptance" else "check its step size, noise and gradient clipping"
