"""Cells of the benchmark tables: mean ± sample standard deviation over seeds."""

from __future__ import annotations

import statistics


def mean_and_spread(values: list[float], digits: str) -> str:
    """``mean ± std`` formatted with ``digits`` (e.g. '.2f'); '–' when no value is known."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{digits}} ± {spread:{digits}}"
