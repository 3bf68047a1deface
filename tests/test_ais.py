"""Annealed importance sampling and bidirectional Monte Carlo (ebmgraph/eval/ais.py): log Z of a
gaussian energy (closed form) and of a 2-D mixture energy (the grid's sum) lies between the
forward and reverse estimates within their reported errors, the gap between them shrinks with
more intermediate distributions, and a transition without its Metropolis correction is caught
(power check). Seeded: the outcomes are reproducible."""

import math

import pytest
import torch

from ebmgraph.eval.ais import (GaussianBase, LogZEstimate, bidirectional_log_z, metropolis_transition, path_energy,
                               schedule)
from ebmgraph.eval.density2d import Grid
from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import langevin_chain

DIM = 5
MEAN = torch.linspace(-1.0, 1.0, DIM, dtype=torch.float64)
STD = torch.linspace(0.5, 1.5, DIM, dtype=torch.float64)
SHIFT = 3.0


def gaussian_energy(x):
    return 0.5 * ((x - MEAN) / STD).pow(2).sum(1) + SHIFT


EXACT = float(STD.log().sum() + 0.5 * DIM * math.log(2 * math.pi) - SHIFT)
BASE = GaussianBase(torch.zeros(DIM, dtype=torch.float64), 2 * torch.ones(DIM, dtype=torch.float64))


def _estimate(transition, intermediate: int, seed: int = 0, energy=gaussian_energy, base=BASE, draws=None):
    generator = torch.Generator().manual_seed(seed)
    if draws is None:
        draws = MEAN + STD * torch.randn(200, DIM, generator=generator, dtype=torch.float64)
    return bidirectional_log_z(energy, base, draws, 200, intermediate, transition, generator)


def _brackets(estimate, exact: float, k: float = 4.0) -> bool:
    """The lower (forward) estimate is not above, and the upper (reverse) one not below, the exact
    value beyond k standard errors."""
    return (estimate.forward.log_z < exact + k * estimate.forward.standard_error
            and estimate.reverse.log_z > exact - k * estimate.reverse.standard_error)


@pytest.mark.parametrize("kind, step_size", [("hmc", 0.3), ("mala", 0.1)])
def test_gaussian_log_z_lies_between_the_bounds(kind, step_size):
    estimate = _estimate(metropolis_transition(kind, step_size), 200)
    assert _brackets(estimate, EXACT) and estimate.consistent
    assert abs(estimate.forward.log_z - EXACT) < 0.2 and abs(estimate.reverse.log_z - EXACT) < 0.2


def test_the_gap_shrinks_with_more_intermediate_distributions():
    """Mean gap over 4 seeds (one gap's standard error is about 0.15 here) for 5, 25 and 250
    intermediate distributions: decreasing, and the last one consistent with 0."""
    gaps = [sum(_estimate(metropolis_transition("mala", 0.1), k, seed=seed).gap for seed in range(4)) / 4
            for k in (5, 25, 250)]
    assert gaps[0] > gaps[1] + 0.2 and gaps[1] > gaps[2] + 0.1 and abs(gaps[2]) < 0.15


def test_a_transition_without_metropolis_correction_is_caught():
    """Power check: unadjusted Langevin at a large step leaves its targets, and the bounds cross."""
    def unadjusted(energy, x, generator):
        return langevin_chain(energy, x, LangevinParameters(steps=1, eta=0.5), generator)[0].position
    estimate = _estimate(unadjusted, 50)
    assert not estimate.consistent and not _brackets(estimate, EXACT)


def mixture_energy(x):
    shift = torch.tensor([1.2, 0.0], dtype=x.dtype)
    return -torch.logaddexp(-((x - shift) ** 2).sum(1) / 0.3, -((x + shift) ** 2).sum(1) / 0.5) - 1.0


def test_a_2d_mixture_log_z_matches_the_grid():
    grid = Grid(-6.0, 6.0, 600)
    exact = float(torch.logsumexp(-mixture_energy(grid.points().double()), 0) + math.log(grid.cell_area))
    generator = torch.Generator().manual_seed(5)
    # exact draws of the mixture: weights proportional to each component's mass pi * 0.3 and pi * 0.5
    left = torch.rand(300, generator=generator, dtype=torch.float64) < 0.5 / 0.8
    scale = torch.where(left, math.sqrt(0.25), math.sqrt(0.15)).unsqueeze(1)
    centre = torch.where(left, -1.2, 1.2)
    draws = torch.randn(300, 2, generator=generator, dtype=torch.float64) * scale
    draws[:, 0] += centre
    base = GaussianBase.fit(draws)
    estimate = _estimate(metropolis_transition("hmc", 0.2), 300, seed=6, energy=mixture_energy, base=base, draws=draws)
    assert _brackets(estimate, exact) and abs(estimate.forward.log_z - exact) < 0.15


def test_schedule_path_and_estimator_pieces():
    betas = schedule(20)
    assert betas[0] == 0.0 and betas[-1] == pytest.approx(1.0) and all(b > a for a, b in zip(betas, betas[1:]))
    with pytest.raises(ValueError, match="at least one"):
        schedule(0)
    x = torch.randn(7, DIM, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(path_energy(gaussian_energy, BASE, 0.0)(x), BASE.energy(x))
    torch.testing.assert_close(path_energy(gaussian_energy, BASE, 1.0)(x), gaussian_energy(x))
    normal = torch.distributions.Normal(BASE.mean, BASE.std)
    torch.testing.assert_close(BASE.energy(x), -normal.log_prob(x).sum(1))
    equal = LogZEstimate.of(torch.full((10,), 2.5, dtype=torch.float64))
    assert equal.log_z == pytest.approx(2.5) and equal.standard_error == 0 and equal.weights_ess == pytest.approx(10)
    assert LogZEstimate.of(torch.tensor([0.0, math.log(3.0)]), sign=-1.0).log_z == pytest.approx(-math.log(2.0))
