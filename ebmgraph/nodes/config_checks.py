"""Checks shared by node and model configs: sizes (widths, depths, counts) that must be positive,
and the clamp box of a kernel."""

from __future__ import annotations


def at_least_one(config, *keys: str) -> list[tuple[str, str]]:
    """A (key, message) problem for each of ``keys`` that is set (not None) and below 1, and for
    each list of widths among them holding a value below 1."""
    out = []
    for key in keys:
        value = getattr(config, key)
        values = value if isinstance(value, list) else [value]
        if any(v is not None and v < 1 for v in values):
            out.append((key, f"must be >= 1, found {value}"))
    return out


def clamp_problems(clamp: tuple[float, float] | None) -> list[tuple[str, str]]:
    """A problem when a kernel's ``clamp`` box is given with low not below high."""
    if clamp is not None and clamp[0] >= clamp[1]:
        return [("clamp", f"expected [low, high] with low < high, found {list(clamp)}")]
    return []
