"""Kernel health during training: a MALA kernel whose proposals are almost never accepted has
chains that no longer move, while its losses look like any other run's."""

from __future__ import annotations

from collections import defaultdict

import torch

ACCEPTANCE_FLOOR = 0.01


class AcceptanceWatch:
    """Collects each MALA kernel's acceptance (``NODE/acceptance`` diagnostics) over a logging
    window and warns once per kernel when its mean falls below ``floor``."""

    def __init__(self, floor: float = ACCEPTANCE_FLOOR):
        self.floor = floor
        self.window: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.warned: set[str] = set()

    def observe(self, diagnostics: dict) -> None:
        for key, value in diagnostics.items():
            if key.endswith("/acceptance"):
                self.window[key.removesuffix("/acceptance")].append(torch.as_tensor(value, dtype=torch.float32))

    def close_window(self, step: int) -> list[str]:
        """Warnings for the window that ends at ``step`` (each kernel warned about once), then a new window."""
        warnings = []
        for node, values in self.window.items():
            mean = float(torch.stack(values).mean())
            if mean < self.floor and node not in self.warned:
                self.warned.add(node)
                warnings.append(f"step {step}: kernel '{node}' accepted {mean:.2%} of its MALA proposals over the "
                                f"last {len(values)} steps (below {self.floor:.0%}): its chains have stopped moving; "
                                "lower its step size")
        self.window.clear()
        return warnings
