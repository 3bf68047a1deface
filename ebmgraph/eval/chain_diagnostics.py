"""Convergence diagnostics of MCMC draws of a scalar, shaped (chains, draws): autocorrelation,
split R-hat (Gelman et al., BDA3 eq. 11.4 on chains split in halves) and the effective sample
size with Geyer's initial monotone sequence (Vehtari et al. 2021, eqs. 9-10 without ranks); and
the diagnostics of a chain run, traced step by step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def autocovariance(x: np.ndarray) -> np.ndarray:
    """Per chain, the biased autocovariance at lags 0..n-1 (an FFT of the centred draws)."""
    n = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size, axis=-1)
    return np.fft.irfft(spectrum * np.conj(spectrum), size, axis=-1)[..., :n] / n


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Per chain, the autocorrelation at lags 0..n-1 (1 at lag 0; 0 for a constant chain)."""
    gamma = autocovariance(x)
    variance = gamma[..., :1]
    return np.divide(gamma, variance, out=np.zeros_like(gamma), where=variance > 0)


def _split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])


def split_rhat(x: np.ndarray) -> float:
    """Split R-hat of draws (chains, draws): sqrt(var+ / W) over the 2m half chains, with W the mean
    within-chain variance and var+ = (n-1)/n W + B/n. 1 for mixed chains; NaN when W = 0."""
    chains = _split(np.asarray(x, dtype=np.float64))
    n = chains.shape[1]
    within = chains.var(axis=1, ddof=1).mean()
    between = n * chains.mean(axis=1).var(ddof=1)
    if within <= 0:
        return float("nan")
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def effective_sample_size(x: np.ndarray) -> float:
    """ESS of draws (chains, draws) over the split chains: m n / tau with tau = -1 + 2 sum P_k,
    P_k = rho_2k + rho_2k+1 of the combined autocorrelation rho_t = 1 - (W - mean gamma_t) / var+,
    summed while positive and made monotone (Geyer 1992). NaN when the draws are constant."""
    chains = _split(np.asarray(x, dtype=np.float64))
    m, n = chains.shape
    gamma = autocovariance(chains) * n / (n - 1)
    within = gamma[:, 0].mean()
    var_plus = (n - 1) / n * within + chains.mean(axis=1).var(ddof=1)
    if var_plus <= 0:
        return float("nan")
    rho = 1 - (within - gamma.mean(axis=0)) / var_plus
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    stop = np.flatnonzero(pairs < 0)
    pairs = np.minimum.accumulate(pairs[: stop[0] if len(stop) else len(pairs)])
    tau = max(-1 + 2 * pairs.sum(), 1 / np.log10(m * n))  # Stan's floor against antithetic overshoot
    return float(m * n / tau)


def diagnostics(x: np.ndarray, lags: int = 50) -> dict:
    """ESS, ESS per draw, split R-hat and the mean autocorrelation at lags 0..``lags``."""
    x = np.asarray(x, dtype=np.float64)
    ess = effective_sample_size(x)
    return {"ess": ess, "ess_per_draw": ess / x.size, "rhat": split_rhat(x),
            "autocorrelation": autocorrelation(x).mean(axis=0)[: lags + 1].tolist()}


def traced_diagnostics(run: Callable, energy: Callable[[torch.Tensor], torch.Tensor], direction: torch.Tensor,
                       min_steps: int) -> dict:
    """``run(observe) -> ChainInfo`` runs chains that call ``observe`` with their states after
    every step; the diagnostics of the energy and of the projection on the unit ``direction``,
    over the second half of the steps (the first is warm-up), with ``mcmc_`` keys (and the
    acceptance of Metropolis-corrected chains)."""
    direction = direction / direction.norm()
    traces: list[tuple[torch.Tensor, torch.Tensor]] = []

    def observe(x: torch.Tensor) -> None:
        with torch.no_grad():
            traces.append((energy(x).double().cpu(), (x.flatten(1) @ direction).double().cpu()))
    info = run(observe)
    if len(traces) < min_steps:
        raise ValueError(f"metric 'mcmc' needs evaluation chains of at least {min_steps} steps, found {len(traces)}")
    kept = traces[len(traces) // 2:]
    out = {"mcmc_chains": len(kept[0][0]), "mcmc_draws": len(kept)}
    for index, name in enumerate(("energy", "projection")):
        summary = diagnostics(torch.stack([trace[index] for trace in kept], dim=1).numpy())
        out.update({f"mcmc_{key}_{name}": value for key, value in summary.items()})
    if info.acceptance is not None:
        out["mcmc_acceptance"] = float(info.acceptance)
    return out
