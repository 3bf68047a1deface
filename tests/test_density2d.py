"""Exact toy densities and grid metrics (ebmgraph.eval.density2d).

The key check is that each exact density matches its sampler: cell probabilities on a 60 x 60 grid
(integrated from the exact density by 5 x 5 sub-cell midpoints) against a histogram of 200k
sampler draws. The bound is calibrated by drawing histograms of the same size from the exact cell
probabilities themselves (multinomial), i.e. the Monte Carlo error of a *correct* density.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from ebmgraph.eval.density2d import (
    Grid, evaluate_2d, histogram_log_density, kl_on_grid, model_log_density,
    normalize_log_density, total_variation_on_grid, toy_cell_log_density, toy_log_density,
)
from ebmgraph.nodes.toys import TOY_TYPES

TOYS = sorted(TOY_TYPES)
# [-6, 6] in 300 cells of 0.04: below 0.4 x the smallest noise scale (rings, 0.08 -> 0.04 is 0.5x;
# the ring's radial profile is gaussian, for which the midpoint rule is spectrally accurate), and
# the checkerboard's edges (multiples of 2) fall on cell edges.
FINE = Grid(-6.0, 6.0, 300)
POOL = 5
COARSE = Grid(-6.0, 6.0, FINE.n // POOL)
N_SAMPLES = 200_000


@functools.lru_cache(maxsize=None)
def fine_log_density(type_name: str, params: tuple = ()) -> torch.Tensor:
    return toy_log_density(type_name, dict(params), FINE.points())


def cell_probabilities(log_density_fine: torch.Tensor) -> torch.Tensor:
    """Probability of each COARSE cell (renormalised over the grid), from POOL x POOL sub-cells."""
    density = torch.exp(normalize_log_density(log_density_fine, FINE.cell_area)) * FINE.cell_area
    n = COARSE.n
    return density.reshape(n, POOL, n, POOL).sum(dim=(1, 3)).reshape(-1)


def sampler_histogram(type_name: str, params: dict, seed: int = 0) -> torch.Tensor:
    samples = TOY_TYPES[type_name](**params).sample(N_SAMPLES, torch.Generator().manual_seed(seed))
    return torch.exp(histogram_log_density(samples, COARSE, smoothing=0.0)) * COARSE.cell_area


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


@pytest.mark.parametrize("type_name", TOYS)
def test_density_integrates_to_one(type_name):
    log_p = fine_log_density(type_name)
    assert log_p.dtype == torch.float64 and log_p.shape == (FINE.n ** 2,)
    mass = float(torch.exp(log_p).sum()) * FINE.cell_area
    # Mass outside [-6, 6]^2 is < 1e-9 for every toy and the midpoint rule is far more accurate
    # than 1e-6 here (see FINE); a wrong normalising constant or a missed mixture component would
    # be off by percents.
    assert abs(mass - 1) < 1e-6


# A wrong parameter, for the power check: the sampler test must reject these.
PERTURBED = {
    "eight_gaussians": {"noise": 0.38},
    "two_spirals": {"noise": 0.115},
    "rings": {"noise": 0.09},
    "moons": {"noise": 0.22},
    "pinwheel": {"rate": 0.28},
}


@pytest.mark.parametrize("type_name", TOYS)
def test_density_matches_sampler(type_name):
    exact = cell_probabilities(fine_log_density(type_name))
    observed = sampler_histogram(type_name, {})
    generator = torch.Generator().manual_seed(1)
    reference = [tv(exact, torch.bincount(torch.multinomial(exact, N_SAMPLES, True, generator=generator),
                                         minlength=len(exact)) / N_SAMPLES) for _ in range(3)]
    # TV of a correct histogram is a sum of hundreds of independent |count errors|: its relative
    # spread is ~0.76 / sqrt(occupied cells) < 5%, so 1.25 x the largest reference TV leaves >5
    # standard deviations. The sub-cell integration bias is ~1e-3, small against the Monte Carlo
    # TV (~0.02-0.04).
    bound = 1.25 * max(reference)
    assert tv(exact, observed) < bound
    # power: a slightly wrong parameter (or, for the checkerboard, a shift by 0.1) fails the bound
    if type_name in PERTURBED:
        wrong = cell_probabilities(fine_log_density(type_name, tuple(PERTURBED[type_name].items())))
    else:
        wrong = cell_probabilities(toy_log_density(type_name, {}, FINE.points() - torch.tensor([0.1, 0.0])))
    assert tv(wrong, observed) > bound


@pytest.mark.parametrize("type_name", ["two_spirals", "pinwheel", "rings"])
def test_density_matches_sampler_with_parameters(type_name):
    params = {"two_spirals": {"noise": 0.2}, "pinwheel": {"arms": 3, "radial_std": 0.25, "tangential_std": 0.2,
                                                          "rate": -0.4, "scale": -1.5},
              "rings": {"scale": 4.0, "noise": 0.15}}[type_name]
    exact = cell_probabilities(fine_log_density(type_name, tuple(params.items())))
    generator = torch.Generator().manual_seed(2)
    reference = tv(exact, torch.bincount(torch.multinomial(exact, N_SAMPLES, True, generator=generator),
                                        minlength=len(exact)) / N_SAMPLES)
    assert tv(exact, sampler_histogram(type_name, params, seed=3)) < 1.25 * reference
    assert tv(exact, cell_probabilities(fine_log_density(type_name))) > 0.2  # the parameters matter


def test_batch_size_key_is_ignored_and_unknown_keys_fail():
    points = torch.zeros(3, 2)
    assert torch.equal(toy_log_density("moons", {"batch_size": 64, "noise": 0.3}, points),
                       toy_log_density("moons", {"noise": 0.3}, points))
    with pytest.raises(TypeError):
        toy_log_density("moons", {"sigma": 0.3}, points)
    with pytest.raises(ValueError, match="no exact density"):
        toy_log_density("digits", {}, points)
    with pytest.raises(ValueError, match="noise"):
        toy_log_density("rings", {"noise": 0.0}, points)


def test_tails_are_finite_except_checkerboard():
    far = torch.tensor([[5.9, -5.9], [0.0, 5.5], [-4.5, 0.3]])
    for type_name in TOYS:
        values = toy_log_density(type_name, {}, far)
        assert (torch.isfinite(values) if type_name != "checkerboard" else values == -math.inf).all()


def test_checkerboard_exact():
    points = torch.tensor([[0.5, 0.5], [-0.5, 0.5], [-3.0, -3.0], [3.0, -1.0], [3.0, 1.0], [4.5, 0.5]])
    assert toy_log_density("checkerboard", {}, points).tolist() == pytest.approx(
        [-math.log(32), -math.inf, -math.log(32), -math.log(32), -math.inf, -math.inf])


def test_kl_self_is_zero_and_grows_with_shift():
    cell_area = FINE.cell_area
    for type_name in TOYS:
        log_p = fine_log_density(type_name)
        assert abs(kl_on_grid(log_p, log_p, cell_area)) < 1e-9
    # eight gaussians: KL is jointly convex, so KL(p || p shifted by d) <= d^2 / (2 noise^2), the
    # KL of one shifted component (and near it, the components barely overlapping).
    log_p, noise = fine_log_density("eight_gaussians"), 0.35
    kls = []
    for shift in (0.1, 0.5, 1.0):
        log_q = toy_log_density("eight_gaussians", {}, FINE.points() - torch.tensor([shift, 0.0]))
        kls.append(kl_on_grid(log_p, log_q, cell_area))
        assert 0.8 * shift ** 2 / (2 * noise ** 2) < kls[-1] <= shift ** 2 / (2 * noise ** 2) * (1 + 1e-6)
    assert kls[0] < kls[1] < kls[2]
    grid = Grid(-6.0, 6.0, 150)  # cells of 0.08: enough to resolve every toy's noise scale
    for type_name in ("two_spirals", "rings", "moons", "pinwheel"):
        log_p = toy_log_density(type_name, {}, grid.points())
        values = [kl_on_grid(log_p, toy_log_density(type_name, {}, grid.points() - torch.tensor([s, 0.0])),
                             grid.cell_area) for s in (0.1, 0.5, 1.0)]
        assert 0 < values[0] < values[1] < values[2] < math.inf
    # the checkerboard shifted has zeros where it has mass: KL is infinite
    log_q = toy_log_density("checkerboard", {}, FINE.points() - torch.tensor([0.1, 0.0]))
    assert kl_on_grid(fine_log_density("checkerboard"), log_q, cell_area) == math.inf


def test_kl_and_tv_of_checkerboard_against_uniform():
    # exact: p = 1/32 on area 32, q = 1/144 on [-6, 6]^2
    log_p, log_u = fine_log_density("checkerboard"), torch.zeros(FINE.n ** 2)
    assert kl_on_grid(log_p, log_u, FINE.cell_area) == pytest.approx(math.log(144 / 32), rel=1e-12)
    assert kl_on_grid(log_u, log_p, FINE.cell_area) == math.inf
    assert total_variation_on_grid(log_p, log_u, FINE.cell_area) == pytest.approx(1 - 32 / 144, rel=1e-12)


def test_total_variation_range_and_symmetry():
    cell_area = FINE.cell_area
    densities = [fine_log_density(t) for t in TOYS]
    for log_p in densities:
        assert total_variation_on_grid(log_p, log_p, cell_area) == pytest.approx(0, abs=1e-12)
        for log_q in densities:
            value = total_variation_on_grid(log_p, log_q, cell_area)
            assert 0 <= value <= 1
            assert value == pytest.approx(total_variation_on_grid(log_q, log_p, cell_area), abs=1e-12)
    left = torch.where(FINE.points()[:, 0] < 0, 0.0, -math.inf)
    assert total_variation_on_grid(left, left.flip(0), cell_area) == pytest.approx(1.0)


def test_normalize_and_errors():
    values = torch.randn(COARSE.n ** 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    normalized = normalize_log_density(values + 7, COARSE.cell_area)
    assert float(torch.exp(normalized).sum()) * COARSE.cell_area == pytest.approx(1, rel=1e-12)
    with pytest.raises(ValueError, match="no mass"):
        normalize_log_density(torch.full((4,), -math.inf), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        normalize_log_density(torch.tensor([0.0, math.nan]), 1.0)
    with pytest.raises(ValueError, match="shapes"):
        kl_on_grid(torch.zeros(4), torch.zeros(5), 1.0)


def test_grid_layout():
    grid = Grid(-1, 3, 4)
    assert grid.cell_area == 1.0 and grid.centers().tolist() == [-0.5, 0.5, 1.5, 2.5]
    points = grid.points()
    assert points.dtype == torch.float64 and points.shape == (16, 2)
    assert points[1].tolist() == [-0.5, 0.5] and points[4].tolist() == [0.5, -0.5]  # (i, j) -> i * n + j
    assert grid.image(points[:, 0])[2, 3] == 1.5
    with pytest.raises(ValueError):
        Grid(1, 1, 4)


def test_histogram_log_density():
    grid = Grid(0, 2, 2)  # cells of area 1
    samples = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 1.5], [1.5, 0.5], [5.0, 5.0], [math.nan, 0.0]])
    log_h = histogram_log_density(samples, grid, smoothing=0.0)  # the 2 outside samples are dropped
    assert torch.exp(log_h).tolist() == pytest.approx([0.5, 0.25, 0.25, 0.0])
    smoothed = torch.exp(histogram_log_density(samples, grid, smoothing=0.1))
    assert smoothed.tolist() == pytest.approx([0.9 * 0.5 + 0.025, 0.9 * 0.25 + 0.025, 0.9 * 0.25 + 0.025, 0.025])
    assert float(smoothed.sum()) == pytest.approx(1)
    with pytest.raises(ValueError, match="no sample"):
        histogram_log_density(torch.tensor([[9.0, 9.0]]), grid)


class ExactEnergy(nn.Module):
    """E = -log p_data, optionally with a float32 parameter (so points arrive as float32)."""

    def __init__(self, type_name: str, float32: bool = False, column: bool = False):
        super().__init__()
        self.type_name, self.column = type_name, column
        self.dummy = nn.Parameter(torch.zeros(())) if float32 else None

    def forward(self, x):
        energy = -toy_log_density(self.type_name, {}, x).to(x.dtype)
        return energy[:, None] if self.column else energy


def test_model_log_density_of_exact_energy():
    grid = Grid(-6.0, 6.0, 120)
    for type_name in ("moons", "rings"):
        log_data = normalize_log_density(toy_log_density(type_name, {}, grid.points()), grid.cell_area)
        energy = ExactEnergy(type_name, column=True).train()
        log_model = model_log_density(energy, grid, batch=1000)
        assert energy.training  # mode restored
        assert log_model.dtype == torch.float64
        assert kl_on_grid(log_data, log_model, grid.cell_area) < 1e-9
        assert kl_on_grid(log_model, log_data, grid.cell_area) < 1e-9
    # float32 energies: points and energies are rounded to float32 (relative 6e-8 on log p ~ -100
    # in the tails is ~1e-5 in log density), so KL is tiny but not 0
    log_data = normalize_log_density(toy_log_density("eight_gaussians", {}, grid.points()), grid.cell_area)
    log_model = model_log_density(ExactEnergy("eight_gaussians", float32=True), grid)
    assert kl_on_grid(log_data, log_model, grid.cell_area) < 1e-6


def test_evaluate_2d():
    grid = Grid(-6.0, 6.0, 60)
    samples = TOY_TYPES["moons"]().sample(20_000, torch.Generator().manual_seed(0))
    metrics = evaluate_2d("moons", {"batch_size": 8}, grid, energy=ExactEnergy("moons"), samples=samples)
    assert set(metrics) == {"kl_data_model", "kl_model_data", "tv", "kl_data_samples", "tv_samples"}
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["kl_data_model"] < 1e-9 and metrics["kl_model_data"] < 1e-9 and metrics["tv"] < 1e-9
    # 20k samples on ~400 occupied cells: Monte Carlo TV ~ 0.5 sqrt(2 * 400 / (pi * 20000)) = 0.06
    assert 0 < metrics["tv_samples"] < 0.1 and 0 < metrics["kl_data_samples"] < 0.1
    assert set(evaluate_2d("moons", None, grid, samples=samples)) == {"kl_data_samples", "tv_samples"}
    bad = evaluate_2d("moons", None, grid, energy=ExactEnergy("rings"))
    assert bad["tv"] > 0.5 and bad["kl_data_model"] > 1


def test_toy_cell_log_density_is_the_mean_density_over_each_cell():
    """Eight gaussians' mass in a cell, in closed form: sum over components of 1/8 times the
    product of the normal CDF differences along x and y."""
    grid, toy = Grid(-4.0, 4.0, 12), TOY_TYPES["eight_gaussians"](noise=0.2)
    angle = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    means = toy.scale * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    normal = torch.distributions.Normal(0.0, toy.noise)
    edges = grid.low + torch.arange(grid.n + 1, dtype=torch.float64) * grid.width
    along = normal.cdf(edges[:, None] - means[None, :, 0]).diff(dim=0), normal.cdf(edges[:, None] - means[None, :, 1]).diff(dim=0)
    mass = torch.einsum("ik,jk->ij", *along).reshape(-1) / 8
    cell = torch.exp(toy_cell_log_density("eight_gaussians", {"noise": 0.2}, grid, refine=32)) * grid.cell_area
    assert torch.allclose(cell, mass, atol=1e-4)
    at_centers = torch.exp(toy_log_density("eight_gaussians", {"noise": 0.2}, grid.points())) * grid.cell_area
    assert (at_centers - mass).abs().max() > 0.01  # 100 x the tolerance: the 0.67-wide cells smooth the 0.2 components
