"""MCMC diagnostics (ebmgraph/eval/chain_diagnostics.py) against the closed forms of AR(1) chains
x_t = phi x_t-1 + sqrt(1 - phi^2) e_t: integrated autocorrelation time tau = (1 + phi) / (1 - phi),
so ESS = m n / tau; the autocorrelation at lag k is phi^k; the split R-hat of stationary chains is
sqrt(1 + (tau - 1) / h) for half chains of h draws (their means' variance is tau / h). Each
reference is compared with the mean over R seeded replicates, to 5 of its standard errors."""

import math

import numpy as np
import pytest

from ebmgraph.eval.chain_diagnostics import autocorrelation, diagnostics, effective_sample_size, split_rhat

REPLICATES, CHAINS, DRAWS = 40, 4, 2000


def ar1(phi: float, rng: np.random.Generator, chains: int = CHAINS, draws: int = DRAWS) -> np.ndarray:
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    noise = rng.standard_normal((chains, draws)) * math.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def _replicates(statistic, phi: float, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    offsets = shift * np.arange(CHAINS)[:, None]
    return np.array([statistic(ar1(phi, rng) + offsets) for _ in range(REPLICATES)])


def _within_error(values: np.ndarray, reference: float) -> bool:
    return abs(values.mean() - reference) < 5 * values.std(ddof=1) / math.sqrt(len(values))


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, -0.3])
def test_ess_and_rhat_match_the_ar1_closed_forms(phi):
    tau = (1 + phi) / (1 - phi)
    assert _within_error(_replicates(effective_sample_size, phi, seed=1), CHAINS * DRAWS / tau)
    assert _within_error(_replicates(split_rhat, phi, seed=2), math.sqrt(1 + (tau - 1) / (DRAWS // 2)))


def test_the_comparison_tells_neighbouring_chains_apart():
    """Power check: the ESS of phi = 0.9 chains is not within error of the phi = 0.85 closed form,
    nor that of an estimator that ignores autocorrelation (ESS = m n)."""
    ess = _replicates(effective_sample_size, 0.9, seed=1)
    assert not _within_error(ess, CHAINS * DRAWS * 0.15 / 1.85)
    assert not _within_error(ess, CHAINS * DRAWS)


def test_rhat_flags_chains_that_have_not_mixed():
    """Chains around different means (offsets of one standard deviation): R-hat is far above 1,
    near sqrt(1 + var(offsets) + (tau - 1) / h) for the offsets' sample variance."""
    tau, offsets = 19.0, np.arange(CHAINS)
    expected = math.sqrt(1 + np.var(np.repeat(offsets, 2), ddof=1) + (tau - 1) / (DRAWS // 2))
    values = _replicates(split_rhat, 0.9, seed=3, shift=1.0)
    assert values.min() > 1.3 and abs(values.mean() - expected) < 0.05 * expected


def test_autocorrelation_is_phi_to_the_lag():
    x = ar1(0.7, np.random.default_rng(4), chains=200, draws=400)
    rho = autocorrelation(x).mean(axis=0)
    # lag-k sample autocorrelations of 200 chains of 400 draws: standard error about 0.01
    assert rho[0] == pytest.approx(1.0) and np.abs(rho[1:6] - 0.7 ** np.arange(1, 6)).max() < 0.05


def test_constant_draws_and_the_summary():
    assert math.isnan(split_rhat(np.ones((4, 100)))) and math.isnan(effective_sample_size(np.ones((4, 100))))
    summary = diagnostics(ar1(0.5, np.random.default_rng(5)), lags=10)
    assert len(summary["autocorrelation"]) == 11 and summary["autocorrelation"][0] == pytest.approx(1.0)
    assert summary["ess_per_draw"] == pytest.approx(summary["ess"] / (CHAINS * DRAWS))
    assert 0.2 < summary["ess_per_draw"] < 0.45  # 1 / tau = 1/3
