"""Annealed importance sampling (Neal 2001) for log Z of any energy, with bidirectional Monte Carlo
(Grosse et al. 2015): the geometric path f_beta = (1 - beta) B + beta E from a normalized
diagonal gaussian base exp(-B) (Z_0 = 1) to the target exp(-E), Metropolis-corrected transitions
(MALA or HMC) at every intermediate beta.

Forward AIS starts from exact base draws; its estimate logmeanexp(log w) of log Z is a
stochastic lower bound (E[log Z_hat] <= log Z by Jensen). Reverse AIS runs the path backwards
from target draws and estimates log(1 / Z): minus it is a stochastic upper bound when the start
states are exact target draws. The gap between the two bounds shrinks as intermediate
distributions are added; a forward estimate far above the reverse one flags transitions that do
not leave their targets invariant."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import attrs
import torch

from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import mala_chain
from ebmgraph.nodes.mcmc.hamiltonian import HmcParameters, hmc_chain
from ebmgraph.nodes.mcmc.proposal import EnergyFunction

Transition = Callable[[EnergyFunction, torch.Tensor, torch.Generator], torch.Tensor]
"""(the energy of one intermediate distribution, states, generator) -> states after a move that
leaves exp(-energy) invariant."""


@attrs.frozen
class GaussianBase:
    """The normalized base N(mean, std^2 I) per dimension: B(x) = -log N(x; mean, std^2)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, data: torch.Tensor, floor: float = 1e-3) -> GaussianBase:
        """Per-dimension mean and standard deviation of ``data`` (at least ``floor``)."""
        data = data.flatten(1).double()
        return cls(data.mean(0), data.std(0).clamp_min(floor))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.distributions.Normal(self.mean.to(x), self.std.to(x)).log_prob(x.flatten(1)).sum(1)

    def sample(self, n: int, shape: tuple[int, ...], generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
        z = torch.randn((n, self.mean.numel()), generator=generator, dtype=torch.float64)
        return (self.mean + self.std * z).reshape(n, *shape).to(dtype)


@attrs.frozen
class LogZEstimate:
    """log Z estimated as logmeanexp of the log weights, its delta-method standard error, the
    weights' effective sample size, and the log weights themselves."""

    log_z: float
    standard_error: float
    weights_ess: float
    log_weights: torch.Tensor

    @classmethod
    def of(cls, log_weights: torch.Tensor, sign: float = 1.0) -> LogZEstimate:
        """``sign`` * logmeanexp(log_weights) (sign -1: reverse AIS, whose weights estimate 1 / Z)."""
        w = log_weights.double()
        normalized = (w - w.max()).exp()
        mean = normalized.mean()
        error = float(normalized.std() / (math.sqrt(len(w)) * mean)) if len(w) > 1 else math.inf
        ess = float(normalized.sum() ** 2 / normalized.pow(2).sum())
        return cls(sign * float(w.max() + mean.log()), error, ess, w)


def path_energy(energy: EnergyFunction, base: GaussianBase, beta: float) -> EnergyFunction:
    """f_beta(x) = (1 - beta) B(x) + beta E(x)."""
    return lambda x: (1 - beta) * base.energy(x) + beta * energy(x)


def anneal(energy: EnergyFunction, base: GaussianBase, start: torch.Tensor, betas: list[float],
           transition: Transition, generator: torch.Generator) -> torch.Tensor:
    """Log weights of AIS along ``betas`` from ``start`` (draws of f_betas[0]): the sum over k of
    f_{k-1}(x) - f_k(x) = (beta_k - beta_{k-1}) (B(x) - E(x)) at the state before transition k
    (no move after the last beta)."""
    x, log_w = start, torch.zeros(len(start), dtype=torch.float64, device=start.device)
    for k, (previous, beta) in enumerate(zip(betas[:-1], betas[1:]), 1):
        with torch.no_grad():
            log_w += (beta - previous) * (base.energy(x) - energy(x)).double()
        if k < len(betas) - 1:
            x = transition(path_energy(energy, base, beta), x, generator)
    return log_w


def schedule(intermediate: int) -> list[float]:
    """``intermediate`` + 1 inverse temperatures from 0 to 1, spaced by a sigmoid (dense at both
    ends, where the path changes fastest; Grosse et al. 2013)."""
    if intermediate < 1:
        raise ValueError(f"AIS needs at least one intermediate distribution, found {intermediate}")
    t = torch.linspace(-4, 4, intermediate + 1, dtype=torch.float64).sigmoid()
    return ((t - t[0]) / (t[-1] - t[0])).tolist()


def metropolis_transition(kind: Literal["mala", "hmc"], step_size: float, steps: int = 1,
                          leapfrog_steps: int = 5) -> Transition:
    """``steps`` MALA steps (a = step_size, b = sqrt(2 a): temperature 1) or HMC transitions of
    leapfrog step ``step_size``; both leave exp(-energy) invariant exactly."""
    if kind == "mala":
        parameters = LangevinParameters(steps=steps, eta=step_size)
        return lambda energy, x, generator: mala_chain(energy, x, parameters, generator)[0].position
    parameters = HmcParameters(steps=steps, step_size=step_size, leapfrog_steps=leapfrog_steps)
    return lambda energy, x, generator: hmc_chain(energy, x, parameters, generator)[0].position


@attrs.frozen
class BidirectionalEstimate:
    """Forward (lower) and reverse (upper) AIS estimates of log Z."""

    forward: LogZEstimate
    reverse: LogZEstimate

    @property
    def gap(self) -> float:
        return self.reverse.log_z - self.forward.log_z

    @property
    def consistent(self) -> bool:
        """The lower bound is not above the upper one beyond 3 standard errors."""
        return self.gap > -3 * math.hypot(self.forward.standard_error, self.reverse.standard_error)


def bidirectional_log_z(energy: EnergyFunction, base: GaussianBase, target_draws: torch.Tensor, chains: int,
                        intermediate: int, transition: Transition, generator: torch.Generator) -> BidirectionalEstimate:
    """Forward AIS from ``chains`` base draws and reverse AIS from ``target_draws``, both along
    the sigmoid schedule of ``intermediate`` steps."""
    betas = schedule(intermediate)
    dtype = target_draws.dtype
    start = base.sample(chains, tuple(target_draws.shape[1:]), generator, dtype).to(target_draws.device)
    forward = anneal(energy, base, start, betas, transition, generator)
    reverse = anneal(energy, base, target_draws, betas[::-1], transition, generator)
    return BidirectionalEstimate(LogZEstimate.of(forward), LogZEstimate.of(reverse, sign=-1.0))


def log_likelihood_bounds(energy: EnergyFunction, test: torch.Tensor, base: GaussianBase, intermediate: int,
                          transition: Transition, burn_in: int, generator: torch.Generator) -> dict:
    """Mean test log-likelihood -mean E(x) - log Z of ``test`` under exp(-E): an upper bound from
    forward AIS (log Z from below, as many chains as test points) and a lower one from reverse AIS
    started at the test points after ``burn_in`` transitions at the model; nats per example and
    bits per dimension, with standard errors."""
    with torch.no_grad():
        test_energy = energy(test).double().cpu()
    draws = test
    for _ in range(burn_in):
        draws = transition(energy, draws, generator)
    estimate = bidirectional_log_z(energy, base, draws, len(test), intermediate, transition, generator)
    mean_energy, energy_error = float(test_energy.mean()), float(test_energy.std() / math.sqrt(len(test_energy)))
    dims = test[0].numel()
    out = {"log_z_lower": estimate.forward.log_z, "log_z_lower_se": estimate.forward.standard_error,
           "log_z_upper": estimate.reverse.log_z, "log_z_upper_se": estimate.reverse.standard_error,
           "ais_consistent": float(estimate.consistent)}
    for bound, bits, log_z in (("upper", "lower", estimate.forward), ("lower", "upper", estimate.reverse)):
        out[f"log_likelihood_{bound}"] = -mean_energy - log_z.log_z
        out[f"log_likelihood_{bound}_se"] = math.hypot(energy_error, log_z.standard_error)
        out[f"bits_per_dim_{bits}"] = (mean_energy + log_z.log_z) / (dims * math.log(2))
    return out
