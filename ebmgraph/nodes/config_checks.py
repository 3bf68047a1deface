"""Checks shared by node and model configs: sizes (widths, depths, counts) that must be positive."""

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
