"""The 2-D toy distributions, one class each: its fields are the parameters, ``sample`` draws
points and ``log_density`` is the exact log density, derived from the generative process:

* ``eight_gaussians``: a mixture of 8 isotropic gaussians, closed form.
* ``checkerboard``: uniform (density 1/32) on the 8 squares of side 2 of [-4, 4)^2 whose corner
  indices ``floor(x / 2) + floor(y / 2)`` are even; ``-inf`` elsewhere.
* ``rings``: 4 rings of equal mass blurred by gaussian noise; the angle integral is closed form
  (a modified Bessel function), ``log p = -log(8 pi s^2) + sum_k ... log i0e(r_k |x| / s^2)``.
* ``two_spirals`` and ``moons``: a point is ``c(t) + jitter + noise`` with ``t`` a latent curve
  parameter. The (separable) kernel of ``jitter + noise`` is integrated in closed form (a gaussian
  for moons; for the spirals a uniform square of side 1/6 blurred by the gaussian noise, a product
  of normal-CDF differences) and ``t`` by composite 8-point Gauss-Legendre quadrature whose panels
  are sized from the noise, the curve's speed and curvature and the points' distance to the curve
  (see ``_CurveMixture``). Measured against brute-force quadrature (400k nodes) at default
  parameters: absolute error of log p below 1e-5 where log p > -100 and below 2e-4 on [-6, 6]^2
  (log p down to ~ -3000); it grows slowly in extreme tails (~2e-2 at log p ~ -1e4, |x| ~ 20).
* ``pinwheel``: a deterministic map of a gaussian latent ``(radial, tangential)`` per arm; the
  density is an exact change of variables, summing over *every* pre-image (the map folds over in
  the far tails), found by safeguarded Newton on monotone arcs.

Densities are computed in float64 on the CPU and in log space, so tails are finite (never an
underflowed ``-inf``) except where the true density is zero (outside the checkerboard).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import attrs
import numpy as np
import torch

_LOG_2PI = math.log(2 * math.pi)
_GL_ORDER = 8
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_GL_ORDER)


@attrs.frozen(kw_only=True)
class Toy(abc.ABC):
    """A 2-D toy distribution with its parameters as fields; ``name`` is its data node type."""

    name: ClassVar[str]

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points, float32 (n, 2) on the generator's device."""

    @abc.abstractmethod
    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        """The exact log density (float64, CPU, (N,)) at ``points`` (N, 2); a ValueError for
        parameters without a density."""


@attrs.frozen(kw_only=True)
class EightGaussians(Toy):
    """Eight gaussians (std ``noise``) with centers evenly spaced on a circle of radius ``scale``."""

    name = "eight_gaussians"
    scale: float = 2.83
    noise: float = 0.35

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        angle = _randint(8, n, generator) * (math.pi / 4)
        return _polar(torch.full_like(angle, self.scale), angle) + self.noise * _randn((n, 2), generator)

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        points = points64(points)
        scale, noise = _finite("scale", self.scale), _positive("noise", self.noise)
        angle = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
        means = scale * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        sq = ((points[:, None, :] - means[None]) ** 2).sum(-1)
        return torch.logsumexp(-0.5 * sq / noise ** 2, dim=1) - math.log(8) - _LOG_2PI - 2 * math.log(noise)


@attrs.frozen(kw_only=True)
class TwoSpirals(Toy):
    """Two interleaved spirals with gaussian noise of std ``noise``."""

    name = "two_spirals"
    noise: float = 0.1

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        turn = torch.sqrt(_rand(n, generator)) * 3 * math.pi
        arm = torch.stack([-torch.cos(turn) * turn, torch.sin(turn) * turn], dim=1) + 0.5 * _rand((n, 2), generator)
        side = 1 - 2 * _randint(2, n, generator)
        return side[:, None] * arm / 3 + self.noise * _randn((n, 2), generator)

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        points = points64(points)
        noise = _positive("noise", self.noise)
        if len(points) == 0:
            return points.new_empty(0)
        parts = [mixture.log_density(points) for mixture in _spiral_mixture(points, noise)]
        return torch.logaddexp(*parts)


@attrs.frozen(kw_only=True)
class Checkerboard(Toy):
    """Uniform on the dark squares of a 4x4 checkerboard covering [-4, 4]^2."""

    name = "checkerboard"

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x1 = _rand(n, generator) * 4 - 2
        x2 = _rand(n, generator) - 2 * _randint(2, n, generator) + torch.floor(x1) % 2
        return torch.stack([x1, x2], dim=1) * 2

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        points = points64(points)
        inside = ((points >= -4) & (points < 4)).all(dim=1)
        cells = torch.floor(points / 2).sum(dim=1)
        dark = torch.remainder(cells, 2) == 0
        return torch.where(inside & dark, torch.tensor(-math.log(32.0), dtype=torch.float64),
                           torch.tensor(-math.inf, dtype=torch.float64))


@attrs.frozen(kw_only=True)
class Rings(Toy):
    """Four concentric rings, the outer of radius ``scale``, with gaussian noise of std ``noise``."""

    name = "rings"
    scale: float = 3.0
    noise: float = 0.08

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        radius = (_randint(4, n, generator) + 1) * (self.scale / 4)
        angle = _rand(n, generator) * (2 * math.pi)
        return _polar(radius, angle) + self.noise * _randn((n, 2), generator)

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        points = points64(points)
        scale, noise = _finite("scale", self.scale), _positive("noise", self.noise)
        rho = points.norm(dim=1)[:, None]
        radii = torch.arange(1, 5, dtype=torch.float64)[None, :] * (abs(scale) / 4)
        log_ring = (-0.5 * ((rho - radii) / noise) ** 2
                    + torch.log(torch.special.i0e(rho * radii / noise ** 2)))
        return torch.logsumexp(log_ring, dim=1) - math.log(4) - _LOG_2PI - 2 * math.log(noise)


@attrs.frozen(kw_only=True)
class Moons(Toy):
    """Two interleaving half circles (scikit-learn's moons) scaled by ``scale``, plus gaussian noise."""

    name = "moons"
    scale: float = 2.0
    noise: float = 0.2

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        angle = _rand(n, generator) * math.pi
        upper = _randint(2, n, generator).bool()
        x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
        y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
        center = torch.tensor([0.5, 0.25], device=generator.device)
        return (torch.stack([x, y], dim=1) - center) * self.scale + self.noise * _randn((n, 2), generator)

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        points = points64(points)
        scale, noise = _finite("scale", self.scale), _positive("noise", self.noise)
        if len(points) == 0:
            return points.new_empty(0)
        return _moons_mixture(points, scale, noise)[0].log_density(points)


@attrs.frozen(kw_only=True)
class Pinwheel(Toy):
    """A pinwheel of ``arms`` curved arms; ``rate`` sets how fast they curl."""

    name = "pinwheel"
    arms: int = attrs.field(default=5, validator=attrs.validators.gt(0))
    radial_std: float = 0.3
    tangential_std: float = 0.1
    rate: float = 0.25
    scale: float = 2.0

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        radial = 1 + self.radial_std * _randn(n, generator)
        tangential = self.tangential_std * _randn(n, generator)
        angle = _randint(self.arms, n, generator) * (2 * math.pi / self.arms) + self.rate * torch.exp(radial)
        cos, sin = torch.cos(angle), torch.sin(angle)
        return self.scale * torch.stack([radial * cos - tangential * sin, radial * sin + tangential * cos], dim=1)

    def log_density(self, points: torch.Tensor) -> torch.Tensor:
        """Change of variables. Per arm k the latent ``f = (r, s)`` (``r ~ N(1, radial_std^2)``,
        ``s ~ N(0, tangential_std^2)``) maps to ``y = scale R(a_k + rate e^r) f`` with ``R`` a rotation
        and ``a_k = 2 pi k / arms``. In polar coordinates ``f = rho (cos b, sin b)`` the map keeps
        ``rho = |y| / scale`` and sends ``b`` to the angle ``g(b) = b + rate e^(rho cos b) + a_k`` of y,
        with ``g'(b) = 1 - rate e^r s``, so p(y) = sum over arms and over all roots b of
        ``g(b) = angle(y) (mod 2 pi)`` of ``p(f) / (arms scale^2 |g'(b)|)``. ``g'`` is smallest at
        ``b*``, ``cos b* = 2 rho / (1 + sqrt(1 + 4 rho^2))``; where it is negative there g is
        decreasing on an arc and several roots exist: all of them are found, one per crossing of a
        multiple of 2 pi on each monotone arc. With the default parameters this happens only for
        |y| > ~3.4 (log p < ~ -60); with a large ``tangential_std`` or ``rate`` the folds reach the bulk
        and the density has integrable singularities (caustics) there, so midpoint sums on a grid
        converge slowly (e.g. mass 1.008 on a 360^2 grid for rate=-0.5, tangential_std=0.3).
        """
        points, arms = points64(points), self.arms
        if isinstance(arms, bool) or not isinstance(arms, int) or arms < 1:
            raise ValueError(f"arms must be an integer >= 1, found {arms!r}")
        radial_std = _positive("radial_std", self.radial_std)
        tangential_std = _positive("tangential_std", self.tangential_std)
        rate, scale = _finite("rate", self.rate), _finite("scale", self.scale)
        if scale == 0:
            raise ValueError("scale must be nonzero for the density to exist")
        y = points / scale  # a negative scale is a point reflection, absorbed here
        if rate < 0:  # mirror image: conj(y) follows the pinwheel with rate -rate
            y, rate = y * torch.tensor([1.0, -1.0], dtype=torch.float64), -rate
        rho, phi = y.norm(dim=1), torch.atan2(y[:, 1], y[:, 0])

        def g(b, rho_, shift):
            return b + rate * torch.exp(rho_ * torch.cos(b)) + shift

        def dg(b, rho_):
            return 1 - rate * rho_ * torch.sin(b) * torch.exp(rho_ * torch.cos(b))

        def d2g(b, rho_):
            cos = torch.cos(b)
            return -rate * rho_ * torch.exp(rho_ * cos) * (cos - rho_ * torch.sin(b) ** 2)

        # turning points b1 <= b* <= b2 of g (b1 = b2 = b* where g is monotone)
        b_star = torch.acos(2 * rho / (1 + torch.sqrt(1 + 4 * rho ** 2)))
        folds = dg(b_star, rho) < 0
        b1, b2 = b_star.clone(), b_star.clone()
        if folds.any():
            r_f, s_f = rho[folds], b_star[folds]
            # dg is decreasing on [-b*, b*] and increasing on [b*, 2 pi - b*]
            b1[folds] = _newton_bisect(lambda b, i: -dg(b, r_f[i]), lambda b, i: -d2g(b, r_f[i]), -s_f, s_f)
            b2[folds] = _newton_bisect(lambda b, i: dg(b, r_f[i]), lambda b, i: d2g(b, r_f[i]), s_f, 2 * math.pi - s_f)

        arm_shift = torch.arange(arms, dtype=torch.float64) * (2 * math.pi / arms)
        shift = arm_shift[None, :] - phi[:, None]  # (N, arms): roots of g(b) + shift = 2 pi m
        rho2, b1_, b2_ = rho[:, None].expand_as(shift), b1[:, None].expand_as(shift), b2[:, None].expand_as(shift)
        g1, g2 = g(b1_, rho2, shift), g(b2_, rho2, shift)  # g1 >= g2
        m0 = torch.floor(g2 / (2 * math.pi))
        n_dec = (torch.floor(g1 / (2 * math.pi)) - m0).long()  # crossings on the decreasing arc [b1, b2]
        if n_dec.sum() > 20_000_000:
            raise ValueError("points too far from the pinwheel (its map folds over too often there); use a smaller grid")

        index = torch.arange(len(points))[:, None].expand_as(shift)
        roots, owners = [], []
        for j in range(1, int(n_dec.max().item()) + 2 if n_dec.numel() else 1):
            for increasing in (True, False):
                active = n_dec + (1 if increasing else 0) >= j
                if not active.any():
                    continue
                r_a, s_a, target = rho2[active], shift[active], 2 * math.pi * (m0[active] + j)
                lo, hi = (b2_[active], b1_[active] + 2 * math.pi) if increasing else (b1_[active], b2_[active])
                sign = 1.0 if increasing else -1.0
                root = _newton_bisect(lambda b, i: sign * (g(b, r_a[i], s_a[i]) - target[i]),
                                      lambda b, i: sign * dg(b, r_a[i]), lo, hi)
                roots.append((root, r_a))
                owners.append(index[active])
        if not roots:
            return points.new_empty(0)
        b, rho_b, owner = torch.cat([x for x, _ in roots]), torch.cat([x for _, x in roots]), torch.cat(owners)
        r, s = rho_b * torch.cos(b), rho_b * torch.sin(b)
        jacobian = torch.abs(1 - rate * torch.exp(r) * s)
        log_p = (_log_normal(r, 1.0, radial_std) + _log_normal(s, 0.0, tangential_std)
                 - torch.log(jacobian) - math.log(arms) - 2 * math.log(abs(scale)))
        return _scatter_logsumexp(owner, log_p, len(points))


TOY_TYPES: dict[str, type[Toy]] = {
    toy.name: toy for toy in (EightGaussians, TwoSpirals, Checkerboard, Rings, Moons, Pinwheel)
}


# --- sampling ---

def _rand(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def _randn(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device)


def _randint(high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(high, (n,), generator=generator, device=generator.device).float()


def _polar(radius: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)


# --- densities ---

def points64(points: torch.Tensor) -> torch.Tensor:
    """``points`` as a float64 CPU tensor; a ValueError unless its shape is (N, 2)."""
    points = torch.as_tensor(points).detach().to(device="cpu", dtype=torch.float64)
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), found {tuple(points.shape)}")
    return points


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 for the density to exist, found {value!r}")
    return float(value)


def _finite(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, found {value!r}")
    return float(value)


def _log_normal(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * _LOG_2PI


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate everywhere."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _log_ndtr_diff(high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """log(Phi(high) - Phi(low)) for low < high, without cancellation in either tail."""
    flip = low > 0
    high, low = torch.where(flip, -low, high), torch.where(flip, -high, low)
    log_high = torch.special.log_ndtr(high)
    return log_high + _log1mexp(torch.special.log_ndtr(low) - log_high)


def _scatter_logsumexp(index: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """out[i] = logsumexp(values[index == i]) (``-inf`` where nothing lands)."""
    peak = torch.full((size,), -math.inf, dtype=values.dtype).scatter_reduce(0, index, values, "amax")
    shift = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros(size, dtype=values.dtype).index_add_(0, index, torch.exp(values - shift[index]))
    return shift + torch.log(total)


def _gauss_legendre(edges: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite 8-point Gauss-Legendre nodes and weights on the panels between ``edges``: (K * 8,)."""
    half = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half) + half * _GL_NODES[None, :]
    weights = half * _GL_WEIGHTS[None, :]
    return torch.from_numpy(nodes.reshape(-1)), torch.from_numpy(weights.reshape(-1))


def _panel_edges(t0: float, t1: float, step: Callable[[np.ndarray], np.ndarray], table: int = 8193) -> np.ndarray:
    """Panel edges on [t0, t1] whose lengths follow ``step(t)`` (the wanted panel length at t)."""
    t = np.linspace(t0, t1, table)
    density = 1 / step(t)
    mass = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(t))])
    panels = max(1, math.ceil(mass[-1]))
    return np.interp(np.linspace(0, mass[-1], panels + 1), mass, t)


# --- curve mixtures: integral over a latent curve parameter of a separable kernel ---

Kernel1d = Callable[[torch.Tensor], torch.Tensor]


@attrs.frozen
class _CurveMixture:
    """p(x) = sum_t w_t kx(x0 - c_t0) ky(x1 - c_t1): a quadrature over a curve ``c`` of a separable
    2-D kernel with log factors ``log_kx``, ``log_ky``. Nodes come in panels of 8 consecutive
    Gauss-Legendre nodes; ``log_weights`` holds everything else (mixture weight, latent density,
    quadrature weight).

    Evaluation is a log-space "matrix product": for unique x coordinates and unique y coordinates
    the kernel factors are tabulated, rescaled by their maximum within each panel and multiplied
    panel by panel (``bmm``), and the panels are combined by logsumexp. The panels are sized (see
    ``_spiral_mixture``, ``_moons_mixture``) so that within one panel a log factor varies by at most
    ~100 nats, so a panel's rescaled sum never underflows where it matters.
    """

    centers: torch.Tensor  # (T, 2)
    log_weights: torch.Tensor  # (T,)
    log_kx: Kernel1d
    log_ky: Kernel1d

    def log_density(self, points: torch.Tensor, max_block: int = 1 << 22) -> torch.Tensor:
        ux, ix = torch.unique(points[:, 0], return_inverse=True)
        uy, iy = torch.unique(points[:, 1], return_inverse=True)
        panels = len(self.log_weights) // _GL_ORDER
        a = (self.log_kx(ux[:, None] - self.centers[None, :, 0]) + self.log_weights).view(len(ux), panels, _GL_ORDER)
        b = self.log_ky(uy[:, None] - self.centers[None, :, 1]).view(len(uy), panels, _GL_ORDER)
        alpha, scaled_a = _rescale(a)
        beta, scaled_b = _rescale(b)
        if len(ux) * len(uy) <= 4 * len(points):  # grid-like: all (x, y) pairs, then pick
            table = torch.empty(len(ux), len(uy), dtype=torch.float64)
            rows = max(1, max_block // (panels * len(uy)))
            right = scaled_b.permute(1, 2, 0)  # (K, 8, ny)
            for start in range(0, len(ux), rows):
                part = slice(start, start + rows)
                sums = torch.bmm(scaled_a[part].permute(1, 0, 2), right)  # (K, rows, ny)
                logs = torch.log(sums) + alpha[part].T[:, :, None] + beta.T[:, None, :]
                table[part] = torch.logsumexp(logs, dim=0)
            return table[ix, iy]
        out = torch.empty(len(points), dtype=torch.float64)
        rows = max(1, max_block // (panels * _GL_ORDER))
        for start in range(0, len(points), rows):
            part = slice(start, start + rows)
            sums = (scaled_a[ix[part]] * scaled_b[iy[part]]).sum(-1)
            out[part] = torch.logsumexp(torch.log(sums) + alpha[ix[part]] + beta[iy[part]], dim=1)
        return out


def _rescale(log_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-panel maximum (finite) and exp(log_values - maximum) in [0, 1]."""
    peak = log_values.amax(dim=-1)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    return peak, torch.exp(log_values - peak[..., None])


def _log_gauss_kernel(std: float) -> Kernel1d:
    return lambda u: _log_normal(u, 0.0, std)


def _log_box_gauss_kernel(low: float, width: float, std: float) -> Kernel1d:
    """Log density of U[low, low + width] + N(0, std^2)."""
    return lambda u: _log_ndtr_diff((u - low) / std, (u - low - width) / std) - math.log(width)


def _reach(points: torch.Tensor, curve: Callable[[np.ndarray], np.ndarray], t0: float, t1: float) -> float:
    """An upper bound on the distance from any of ``points`` to the curve (a coarse polyline
    bound: the nearest of 257 curve points plus half the longest gap between them)."""
    coarse = curve(np.linspace(t0, t1, 257))
    gap = float(np.linalg.norm(np.diff(coarse, axis=0), axis=1).max()) / 2
    coarse = torch.from_numpy(coarse)
    nearest = max((torch.cdist(chunk, coarse).amin(dim=1).max().item()
                   for chunk in points.split(65536)), default=0.0)
    return nearest + gap


def _panel_step(std: float, extent: float, reach: float, curvature: np.ndarray) -> np.ndarray:
    """Wanted panel arc length: at most ~1 kernel width (the width shrinks by sqrt(1 + k d) at
    distance d on the convex side of a curve of curvature k) and small enough that a log kernel
    factor (slope <= (d + extent) / std^2) varies by < 100 nats across the panel."""
    accuracy = std / np.sqrt(1 + curvature * reach)
    headroom = 100 * std ** 2 / (reach + extent + 10 * std)
    return np.minimum(accuracy, headroom)


_SPIRAL_TURNS = 3 * math.pi  # the sampler's 540 degrees
_SPIRAL_JITTER = 0.5 / 3  # side of the uniform jitter square, after the division by 3


def _spiral_curve(t: np.ndarray) -> np.ndarray:
    return np.stack([-np.cos(t) * t, np.sin(t) * t], axis=-1) / 3


def _spiral_mixture(points: torch.Tensor, noise: float) -> list[_CurveMixture]:
    """Arm ``c(t) = t (-cos t, sin t) / 3`` with ``t = 3 pi sqrt(U)`` (density 2 t / (3 pi)^2),
    jitter uniform on [0, 1/6]^2, both flipped by the side; then gaussian noise."""
    reach = _reach(points, _spiral_curve, 0.0, _SPIRAL_TURNS)

    def step(t):  # in t: arc step / speed; speed sqrt(1 + t^2) / 3, curvature 3 (t^2 + 2) / (1 + t^2)^1.5
        speed = np.sqrt(1 + t ** 2) / 3
        curvature = 3 * (t ** 2 + 2) / (1 + t ** 2) ** 1.5
        return _panel_step(noise, math.sqrt(2) * _SPIRAL_JITTER, reach, curvature) / speed

    t, weights = _gauss_legendre(_panel_edges(0.0, _SPIRAL_TURNS, step))
    log_weights = math.log(0.5) + torch.log(2 * t / _SPIRAL_TURNS ** 2 * weights)
    centers = torch.from_numpy(_spiral_curve(t.numpy()))
    return [
        _CurveMixture(centers, log_weights, _log_box_gauss_kernel(0.0, _SPIRAL_JITTER, noise),
                      _log_box_gauss_kernel(0.0, _SPIRAL_JITTER, noise)),
        _CurveMixture(-centers, log_weights, _log_box_gauss_kernel(-_SPIRAL_JITTER, _SPIRAL_JITTER, noise),
                      _log_box_gauss_kernel(-_SPIRAL_JITTER, _SPIRAL_JITTER, noise)),
    ]


def _moons_mixture(points: torch.Tensor, scale: float, noise: float) -> list[_CurveMixture]:
    """Upper arc ``(cos a, sin a)``, lower arc ``(1 - cos a, 1/2 - sin a)``, ``a ~ U[0, pi]``, each
    with probability 1/2; minus (1/2, 1/4), times ``scale``; then gaussian noise."""
    def upper(a):
        return scale * (np.stack([np.cos(a), np.sin(a)], axis=-1) - [0.5, 0.25])

    def lower(a):
        return scale * (np.stack([1 - np.cos(a), 0.5 - np.sin(a)], axis=-1) - [0.5, 0.25])

    radius = max(abs(scale), 1e-12)
    reach = max(_reach(points, upper, 0.0, math.pi), _reach(points, lower, 0.0, math.pi))
    edges = _panel_edges(0.0, math.pi, lambda a: _panel_step(noise, 0.0, reach, 1 / radius + 0 * a) / radius)
    angle, weights = _gauss_legendre(edges)
    log_weights = torch.log(0.5 / math.pi * weights)
    centers = torch.from_numpy(np.concatenate([upper(angle.numpy()), lower(angle.numpy())]))
    kernel = _log_gauss_kernel(noise)
    return [_CurveMixture(centers, torch.cat([log_weights, log_weights]), kernel, kernel)]


def _newton_bisect(f, df, lo: torch.Tensor, hi: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """The root of increasing ``f`` on [lo, hi] (elementwise, a root is bracketed): Newton steps,
    falling back to bisection whenever a step would leave the bracket. ``f(x, index)`` and
    ``df(x, index)`` evaluate the functions of the entries ``index`` only (converged entries are
    dropped from the work)."""
    lo, hi = lo.clone(), hi.clone()
    x = (lo + hi) / 2
    active = torch.arange(len(x))
    for _ in range(iterations):
        xa, la, ha = x[active], lo[active], hi[active]
        fx = f(xa, active)
        below = fx < 0
        la, ha = torch.where(below, xa, la), torch.where(below, ha, xa)
        step = xa - fx / df(xa, active)
        tolerance = 1e-14 * (1 + torch.abs(xa))
        finite = torch.isfinite(step)
        done = (fx == 0) | (finite & (torch.abs(step - xa) <= tolerance)) | (ha - la <= tolerance)
        inside = finite & (step > la) & (step < ha)
        new = torch.where(inside | (done & finite), step, (la + ha) / 2)
        x[active], lo[active], hi[active] = torch.where(fx == 0, xa, new), la, ha
        active = active[~done]
        if len(active) == 0:
            break
    return x
