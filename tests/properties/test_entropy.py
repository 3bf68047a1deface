"""The nearest-neighbour entropy of Improved CD (eq. 8): the Kozachenko-Leonenko estimate shifts by
d log c when the samples are scaled by c, ignores translations, and is consistent on gaussians;
the loss -mean log NN moves with it."""

import math

import torch
from monte_carlo import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.kl_losses import (
    NearestNeighbourEntropy, WeightConfig, nearest_neighbour_distances, nearest_neighbour_entropy)

CPU = torch.device("cpu")


def _points(seed: int, n: int, d: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn((n, d), generator=torch.Generator().manual_seed(seed), dtype=dtype)


@settings(derandomize=True, deadline=None, max_examples=examples(40))
@given(d=st.integers(1, 16), n=st.integers(2, 40), m=st.integers(1, 40), scale=st.floats(0.01, 100.0),
       seed=st.integers(0, 2**31))
def test_scaling_by_c_shifts_the_estimate_by_d_log_c(d, n, m, scale, seed):
    x, reference = _points(seed, n, d), _points(seed + 1, m, d)
    shifted = nearest_neighbour_entropy(scale * x, scale * reference)
    expected = nearest_neighbour_entropy(x, reference) + d * math.log(scale)
    assert math.isclose(shifted.item(), expected.item(), rel_tol=1e-9, abs_tol=1e-9)


@settings(derandomize=True, deadline=None, max_examples=examples(40))
@given(d=st.integers(1, 16), n=st.integers(2, 40), offset=st.floats(-50.0, 50.0), seed=st.integers(0, 2**31))
def test_translation_leaves_the_estimate_unchanged(d, n, offset, seed):
    x, reference = _points(seed, n, d), _points(seed + 1, 30, d)
    shift = offset * _points(seed + 2, 1, d)
    moved = nearest_neighbour_entropy(x + shift, reference + shift)
    assert math.isclose(moved.item(), nearest_neighbour_entropy(x, reference).item(), rel_tol=1e-9, abs_tol=1e-9)


def _gaussian_check(estimator, d: int = 2, sigma: float = 1.5, n: int = 4000, m: int = 4000) -> bool:
    """The estimate for N(0, sigma^2 I_d) lies within 4 standard errors of 0.5 d log(2 pi e sigma^2).
    The standard error comes from the per-sample terms d log rho_i (independent given the
    reference set); the estimator's bias at m = 4000 in d = 2 is far below it."""
    x, reference = sigma * _points(0, n, d), sigma * _points(1, m, d)
    truth = 0.5 * d * math.log(2 * math.pi * math.e * sigma**2)
    rho = torch.cdist(x, reference).min(dim=1).values
    standard_error = (d * rho.log()).std().item() / math.sqrt(n)
    return abs(estimator(x, reference).item() - truth) < 4 * standard_error


def test_estimate_is_consistent_on_a_gaussian():
    assert _gaussian_check(nearest_neighbour_entropy)


def test_gaussian_check_has_teeth():
    """Power check: the estimate without the dimension factor d (the paper's O(1)-free form) fails."""
    def without_d(x, reference):
        return nearest_neighbour_entropy(x, reference) - (x.shape[1] - 1) * torch.cdist(x, reference).min(1).values.log().mean()
    assert not _gaussian_check(without_d)


@settings(derandomize=True, deadline=None, max_examples=examples(20))
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 2**31))
def test_loss_is_minus_mean_log_distance_and_shifts_by_minus_log_c(scale, seed):
    node = NearestNeighbourEntropy("entropy", WeightConfig(), {}, CPU)
    ctx = StepContext(0, 0, CPU)
    x, reference = _points(seed, 16, 5), _points(seed + 1, 10, 5)
    loss = node(ctx, x=x, reference=reference)["loss"]
    expected = -torch.cdist(x, reference).min(1).values.log().mean()
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-12)
    scaled = node(ctx, x=scale * x, reference=scale * reference)["loss"]
    assert math.isclose(scaled.item(), loss.item() - math.log(scale), rel_tol=1e-9, abs_tol=1e-9)


def test_loss_is_zero_without_a_reference_set():
    node = NearestNeighbourEntropy("entropy", WeightConfig(), {}, CPU)
    loss = node(StepContext(0, 0, CPU), x=_points(0, 4, 3), reference=_points(0, 0, 3))["loss"]
    assert loss.item() == 0.0


def test_close_pairs_far_from_the_origin_keep_a_positive_distance():
    """Regression: cdist's matrix-product shortcut (used above 25 rows) rounded such pairs to 0,
    so -log NN became infinite."""
    x = 100.0 + torch.rand((40, 2), generator=torch.Generator().manual_seed(0))
    reference = x[:30] + 1e-3
    distances = nearest_neighbour_distances(x[:30], reference)
    torch.testing.assert_close(distances, torch.full((30,), math.sqrt(2) * 1e-3), rtol=0.05, atol=0)
