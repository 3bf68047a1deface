"""posterior_langevin on a linear-gaussian generator, where the posterior is gaussian in closed
form: its chains have the posterior mean and the unadjusted kernel's exact stationary covariance."""

import math

import torch
from torch import nn

from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.generators import GaussianGenerator
from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.posterior import PosteriorLangevin, PriorLangevin

SIGMA, EPSILON, CHAINS, STEPS = 0.7, 0.3, 20000, 400


def _linear_generator() -> GaussianGenerator:
    torch.manual_seed(0)
    body = nn.Linear(2, 3).double()
    return GaussianGenerator(latent_dim=2, sigma=SIGMA, body=body)


def _closed_form(generator: GaussianGenerator, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior N(m, P^-1) with P = I + W^T W / sigma^2, m = P^-1 W^T (x - b) / sigma^2; and the
    stationary covariance of x <- x - a P (x - m) + b xi with b^2 = 2a: (P - a P^2 / 2)^-1."""
    weight, bias = generator.body.weight.detach(), generator.body.bias.detach()
    precision = torch.eye(2, dtype=torch.float64) + weight.T @ weight / SIGMA**2
    mean = torch.linalg.solve(precision, weight.T @ (x - bias) / SIGMA**2)
    a = EPSILON**2 / 2
    return mean, torch.linalg.inv(precision - a * precision @ precision / 2)


def _chains(generator, x, mask=None):
    kernel = PosteriorLangevin("posterior", LangevinParameters(steps=STEPS, epsilon=EPSILON),
                               {"generator": generator}, torch.device("cpu"))
    observed = x.expand(CHAINS, 3)
    init = torch.zeros(CHAINS, 2, dtype=torch.float64)
    return kernel(StepContext(0, 0, torch.device("cpu")), x=observed, init=init, mask=mask)["z"]


def _assert_gaussian(z, mean, cov):
    """Mean within 5 standard errors per coordinate; covariance entries within 5 standard errors
    (var(z_i z_j) / n for the product of centered coordinates)."""
    n = len(z)
    assert torch.all((z.mean(0) - mean).abs() < 5 * torch.sqrt(torch.diag(cov) / n))
    centered = z - mean
    for i in range(2):
        for j in range(2):
            products = centered[:, i] * centered[:, j]
            assert abs(products.mean() - cov[i, j]) < 5 * products.std() / math.sqrt(n), (i, j)


def test_chains_match_the_closed_form_posterior():
    generator = _linear_generator()
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    mean, cov = _closed_form(generator, x)
    _assert_gaussian(_chains(generator, x), mean, cov)


def test_a_mask_drops_the_unobserved_pixels_from_the_likelihood():
    generator = _linear_generator()
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64).expand(CHAINS, 3)
    observed_only = GaussianGenerator(2, SIGMA, nn.Linear(2, 2).double())
    with torch.no_grad():
        observed_only.body.weight.copy_(generator.body.weight[:2])
        observed_only.body.bias.copy_(generator.body.bias[:2])
    mean, cov = _closed_form(observed_only, x[:2])
    _assert_gaussian(_chains(generator, x, mask), mean, cov)


def test_a_wrong_noise_scale_fails_the_check():
    """Power check: chains run with b = 2 eps (not the tied eps) have the wrong covariance."""
    generator = _linear_generator()
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    mean, cov = _closed_form(generator, x)
    kernel = PosteriorLangevin("posterior", LangevinParameters(steps=STEPS, step_size=EPSILON**2 / 2,
                                                               noise=2 * EPSILON),
                               {"generator": generator}, torch.device("cpu"))
    z = kernel(StepContext(0, 0, torch.device("cpu")), x=x.expand(CHAINS, 3),
               init=torch.zeros(CHAINS, 2, dtype=torch.float64))["z"]
    try:
        _assert_gaussian(z, mean, cov)
    except AssertionError:
        return
    raise AssertionError("a kernel with twice the noise passed the posterior check")


class LatentQuadratic(nn.Module):
    """E(z) = (z - c)^T A (z - c) / 2: with the N(0, I) base the prior is gaussian with precision
    P = A + I and mean P^-1 A c."""

    def __init__(self, precision: torch.Tensor, centre: torch.Tensor):
        super().__init__()
        self.precision, self.centre = precision, centre

    def forward(self, z):
        d = z - self.centre
        return 0.5 * ((d @ self.precision) * d).sum(1)


def _prior_chains(kernel_type=PriorLangevin):
    a_matrix = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    centre = torch.tensor([1.0, -2.0], dtype=torch.float64)
    kernel = kernel_type("prior", LangevinParameters(steps=STEPS, epsilon=EPSILON),
                         {"energy": LatentQuadratic(a_matrix, centre)}, torch.device("cpu"))
    z = kernel(StepContext(0, 0, torch.device("cpu")), init=torch.zeros(CHAINS, 2, dtype=torch.float64))["z"]
    precision = a_matrix + torch.eye(2, dtype=torch.float64)
    mean = torch.linalg.solve(precision, a_matrix @ centre)
    a = EPSILON**2 / 2
    return z, mean, torch.linalg.inv(precision - a * precision @ precision / 2)


def _matches(z, mean, covariance) -> bool:
    """Mean within 5 standard errors, variances within 5 standard errors of a gaussian variance."""
    variances = covariance.diagonal()
    mean_ok = ((z.mean(0) - mean).abs() < 5 * (variances / CHAINS).sqrt()).all()
    var_ok = ((z.var(0) - variances).abs() < 5 * variances * math.sqrt(2 / (CHAINS - 1))).all()
    return bool(mean_ok and var_ok)


def test_prior_langevin_samples_the_tilted_gaussian_prior():
    """DAMC eq. 7, first line: exp(-E(z)) N(z; 0, I) for a quadratic E is gaussian in closed form."""
    assert _matches(*_prior_chains())


def test_prior_check_has_teeth():
    """Power check: a prior kernel that forgets the N(0, I) base measure misses the closed form."""
    class WithoutBase(PriorLangevin):
        def prior_energy(self, z):
            return self.models["energy"](z)
    assert not _matches(*_prior_chains(WithoutBase))
