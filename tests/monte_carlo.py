"""Shared tools of the statistical tests: Kolmogorov-Smirnov against an exact cdf, the family-wise
level, hypothesis example counts that ``--runslow`` multiplies, and the random 2-D gaussian
targets that kernels must preserve."""

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


class RandomQuadratic(torch.nn.Module):
    """E(x) = (x - m)^T P (x - m) / 2: the gaussian N(m, P^-1) at temperature 1."""

    def __init__(self, mean: torch.Tensor, precision: torch.Tensor):
        super().__init__()
        self.mean, self.precision = mean, precision

    def forward(self, x):
        centered = x.flatten(1) - self.mean
        return 0.5 * ((centered @ self.precision) * centered).sum(1)


def gaussian_target(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random 2-D mean and well-conditioned covariance."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(2, generator=generator, dtype=torch.float64)
    factor = torch.randn((2, 2), generator=generator, dtype=torch.float64)
    return mean, factor @ factor.T + 0.3 * torch.eye(2, dtype=torch.float64)


def stays_gaussian(move, seed: int, chains: int, alpha: float) -> bool:
    """Chains started exactly from the random N(m, C) of ``seed`` are still N(m, C) after
    ``move(energy, init) -> states``: KS on the two whitened coordinates, each at level alpha / 2."""
    mean, covariance = gaussian_target(seed)
    energy = RandomQuadratic(mean, torch.linalg.inv(covariance))
    cholesky = torch.linalg.cholesky(covariance)
    generator = torch.Generator().manual_seed(seed + 1)
    init = mean + torch.randn((chains, 2), generator=generator, dtype=torch.float64) @ cholesky.T
    x = move(energy, init)
    white = torch.linalg.solve_triangular(cholesky, (x - mean).T, upper=False).T
    level = ks_critical(chains, alpha / 2)
    return all(ks_statistic(white[:, i], STANDARD_NORMAL.cdf) < level for i in range(2))
