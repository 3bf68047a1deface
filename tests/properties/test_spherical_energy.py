"""The marginal energy of CLEL's spherical latent-variable EBM (eq. 11): -log of the integral of
exp(-E(x, z)) over the unit sphere is ½‖f(x)‖² plus a constant that does not depend on x. Checked by
Monte Carlo over uniform latents, with the tolerance from the estimate's standard error; on S^2 the
constant is exact, -log(4π sinh(β)/β). A projector whose output is not normalized breaks it."""

import math
from statistics import NormalDist

import pytest
import torch
from torch import nn
from hypothesis import given, settings
from hypothesis import strategies as st
from monte_carlo import ALPHA, examples

from ebmgraph.nodes.spherical import SphericalEnergy, SphericalEnergyConfig, SphericalEnergyNet, projector

DRAWS, IMAGES, SHAPE = 50000, 4, (1, 8, 8)
EXAMPLES = examples(10)
# Two-sided z threshold, Bonferroni over the examples and the images of each.
THRESHOLD = NormalDist().inv_cdf(1 - ALPHA / (2 * EXAMPLES * IMAGES))


def _model(dim: int, beta: float, seed: int) -> SphericalEnergyNet:
    """The energy of eq. 10 with the paper's projector on a linear backbone f (the property holds
    for any f; a cheap one lets the Monte Carlo sum use many draws)."""
    torch.manual_seed(seed)
    config = SphericalEnergyConfig(latent_dim=dim, projection_hidden=8, beta=beta)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(SHAPE), dim))
    return SphericalEnergyNet(SHAPE, backbone, projector(config), beta).double()


def _constants(model: SphericalEnergyNet, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image x: the Monte Carlo estimate of -log ∫ exp(-E(x, z)) dz - E(x) and its standard error."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((IMAGES, *SHAPE), generator=generator, dtype=torch.float64) * 2 - 1
    dim = model.latent_shape[0]
    log_area = math.log(2) + dim / 2 * math.log(math.pi) - math.lgamma(dim / 2)
    constants, errors = [], []
    with torch.no_grad():
        for image in x:
            z = torch.randn((DRAWS, dim), generator=generator, dtype=torch.float64)
            z = z / z.norm(dim=1, keepdim=True)                          # uniform on S^(dim-1)
            images = image.expand(DRAWS, *SHAPE)
            weights = torch.exp(-(model.joint(images, z) - model(images)))  # exp(β g(f/‖f‖)ᵀ z)
            constants.append(-log_area - weights.mean().log())
            errors.append(weights.std() / (weights.mean() * math.sqrt(DRAWS)))  # delta method for log
    return torch.stack(constants), torch.stack(errors)


@settings(derandomize=True, deadline=None, max_examples=EXAMPLES)
@given(dim=st.integers(2, 8), beta=st.floats(0.1, 5.0), seed=st.integers(0, 2**31))
def test_the_marginal_is_half_the_squared_norm_plus_a_constant(dim, beta, seed):
    constants, errors = _constants(_model(dim, beta, seed), seed + 1)
    spread = (constants - constants[0]).abs()
    assert bool((spread <= THRESHOLD * (errors.pow(2) + errors[0].pow(2)).sqrt()).all()), (constants, errors)
    if dim == 3:   # ∫_{S^2} exp(β uᵀz) dz = 4π sinh(β)/β for any unit u
        exact = -math.log(4 * math.pi * math.sinh(beta) / beta)
        assert bool(((constants - exact).abs() <= THRESHOLD * errors).all()), (constants, exact, errors)


def test_an_unnormalized_projector_makes_the_constant_depend_on_x(monkeypatch):
    """Power check: without the l2 normalization of g's output (§3.2), ∫ exp(β gᵀz) dz grows with
    ‖g(f/‖f‖)‖, which varies with x, and the test above fails."""
    monkeypatch.setattr(SphericalEnergyNet, "direction",
                        lambda self, f: self.projector(f / f.norm(dim=1, keepdim=True)))
    constants, errors = _constants(_model(3, 5.0, 0), 1)
    spread = (constants - constants[0]).abs()
    assert bool((spread > THRESHOLD * (errors.pow(2) + errors[0].pow(2)).sqrt()).any()), (constants, errors)


@pytest.mark.parametrize("projection", ["mlp", "linear"])
def test_the_projector_is_positively_homogeneous(projection):
    """g(f/‖f‖) = g(f)/‖f‖ for a bias-free g with leaky ReLU (Algorithm 1 line 6 writes the
    right-hand side, §3.2 the left): the two readings give the same normalized direction."""
    torch.manual_seed(0)
    config = SphericalEnergyConfig(channels=4, stages=2, widths=[4, 8], latent_dim=6, head_hidden=8,
                                   projection=projection, projection_hidden=8)
    model = SphericalEnergy.build(config, SHAPE).double()
    f = torch.randn(16, 6, dtype=torch.float64) * 3
    norms = f.norm(dim=1, keepdim=True)
    torch.testing.assert_close(model.projector(f / norms), model.projector(f) / norms)
