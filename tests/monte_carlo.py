"""Shared tools of the statistical tests: Kolmogorov-Smirnov against an exact cdf, the family-wise
level, and hypothesis example counts that ``--runslow`` multiplies."""

import math

import torch

ALPHA = 1e-3  # family-wise false-alarm rate of every statistical test of a correct implementation
SLOW_FACTOR = 10
scale = 1  # set to SLOW_FACTOR by tests/conftest.py under --runslow, before test modules are imported


def examples(count: int) -> int:
    """Hypothesis examples for a test: ``count``, times SLOW_FACTOR under ``--runslow``. Bonferroni
    corrections must divide by this number, not by ``count``."""
    return count * scale


def ks_statistic(sample: torch.Tensor, cdf) -> float:
    """Kolmogorov-Smirnov distance between a 1-D sample and a continuous cdf."""
    x, _ = sample.double().sort()
    n = len(x)
    f = cdf(x)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - f
    lower = f - torch.arange(0, n, dtype=torch.float64) / n
    return float(torch.maximum(upper, lower).max())


def ks_critical(n: int, alpha: float) -> float:
    """Asymptotic KS critical value sqrt(-log(alpha / 2) / (2 n))."""
    return math.sqrt(-math.log(alpha / 2) / (2 * n))


STANDARD_NORMAL = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
