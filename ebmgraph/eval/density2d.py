"""Exact densities of the 2-D toy data and divergences between 2-D densities on a grid.

``toy_log_density(type_name, params, points)`` is the exact log density of the toy distribution
drawn by ``ebmgraph.nodes.data.sample_<type_name>(n, generator, **params)``, derived from the
sampler's generative process (same keyword parameters, same defaults):

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

Everything is computed in float64 on the CPU and in log space, so tails are finite (never an
underflowed ``-inf``) except where the true density is zero (outside the checkerboard).

Grid metrics (natural log units) take log densities evaluated at the cell centers of a ``Grid``
(flattened as ``Grid.points()``) and renormalise them over the grid first: the data's mass
outside the grid is dropped, as is the model's (which is only ever known up to a constant).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np
import torch
from torch import nn

__all__ = [
    "Grid", "TOY_LOG_DENSITIES", "toy_log_density", "normalize_log_density", "kl_on_grid",
    "total_variation_on_grid", "histogram_log_density", "model_log_density", "evaluate_2d",
]

_LOG_2PI = math.log(2 * math.pi)
_GL_ORDER = 8
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_GL_ORDER)


# --- grid ---

@attrs.frozen
class Grid:
    """``n`` x ``n`` square cells covering [low, high]^2.

    Cell ``(i, j)`` has center ``(c[i], c[j])`` with ``c = centers()``: ``i`` indexes x and ``j``
    indexes y. ``points()`` lists the centers row-major over ``(i, j)``, i.e. the flattened
    ``torch.meshgrid(c, c, indexing="ij")``: ``points()[i * n + j] == (c[i], c[j])``, so any
    per-point tensor ``v`` reshapes to ``v.reshape(n, n)[i, j]`` (x first; transpose it for
    ``imshow(..., origin="lower")``, which wants y first).
    """

    low: float = attrs.field(converter=float)
    high: float = attrs.field(converter=float)
    n: int = attrs.field(validator=attrs.validators.gt(0))

    def __attrs_post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"grid needs finite low < high, found low={self.low}, high={self.high}")

    @property
    def width(self) -> float:
        """Side of one cell."""
        return (self.high - self.low) / self.n

    @property
    def cell_area(self) -> float:
        return self.width ** 2

    def centers(self) -> torch.Tensor:
        """Cell centers along one axis, (n,) float64."""
        return self.low + (torch.arange(self.n, dtype=torch.float64) + 0.5) * self.width

    def points(self) -> torch.Tensor:
        """All cell centers, (n * n, 2) float64, row-major over (x index, y index)."""
        x, y = torch.meshgrid(self.centers(), self.centers(), indexing="ij")
        return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)

    def image(self, values: torch.Tensor) -> torch.Tensor:
        """Per-point ``values`` (n * n,) as an (n, n) array indexed [x index, y index]."""
        return values.reshape(self.n, self.n)


# --- helpers ---

def _points64(points: torch.Tensor) -> torch.Tensor:
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


# --- the toy log densities (keyword parameters and defaults as the samplers) ---

def log_density_eight_gaussians(points: torch.Tensor, *, scale: float = 2.83, noise: float = 0.35) -> torch.Tensor:
    points = _points64(points)
    scale, noise = _finite("scale", scale), _positive("noise", noise)
    angle = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    means = scale * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    sq = ((points[:, None, :] - means[None]) ** 2).sum(-1)
    return torch.logsumexp(-0.5 * sq / noise ** 2, dim=1) - math.log(8) - _LOG_2PI - 2 * math.log(noise)


def log_density_two_spirals(points: torch.Tensor, *, noise: float = 0.1) -> torch.Tensor:
    points = _points64(points)
    noise = _positive("noise", noise)
    if len(points) == 0:
        return points.new_empty(0)
    parts = [mixture.log_density(points) for mixture in _spiral_mixture(points, noise)]
    return torch.logaddexp(*parts)


def log_density_checkerboard(points: torch.Tensor) -> torch.Tensor:
    points = _points64(points)
    inside = ((points >= -4) & (points < 4)).all(dim=1)
    cells = torch.floor(points / 2).sum(dim=1)
    dark = torch.remainder(cells, 2) == 0
    return torch.where(inside & dark, torch.tensor(-math.log(32.0), dtype=torch.float64),
                       torch.tensor(-math.inf, dtype=torch.float64))


def log_density_rings(points: torch.Tensor, *, scale: float = 3.0, noise: float = 0.08) -> torch.Tensor:
    points = _points64(points)
    scale, noise = _finite("scale", scale), _positive("noise", noise)
    rho = points.norm(dim=1)[:, None]
    radii = torch.arange(1, 5, dtype=torch.float64)[None, :] * (abs(scale) / 4)
    log_ring = (-0.5 * ((rho - radii) / noise) ** 2
                + torch.log(torch.special.i0e(rho * radii / noise ** 2)))
    return torch.logsumexp(log_ring, dim=1) - math.log(4) - _LOG_2PI - 2 * math.log(noise)


def log_density_moons(points: torch.Tensor, *, scale: float = 2.0, noise: float = 0.2) -> torch.Tensor:
    points = _points64(points)
    scale, noise = _finite("scale", scale), _positive("noise", noise)
    if len(points) == 0:
        return points.new_empty(0)
    return _moons_mixture(points, scale, noise)[0].log_density(points)


def log_density_pinwheel(points: torch.Tensor, *, arms: int = 5, radial_std: float = 0.3,
                         tangential_std: float = 0.1, rate: float = 0.25, scale: float = 2.0) -> torch.Tensor:
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
    points = _points64(points)
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 1:
        raise ValueError(f"arms must be an integer >= 1, found {arms!r}")
    radial_std, tangential_std = _positive("radial_std", radial_std), _positive("tangential_std", tangential_std)
    rate, scale = _finite("rate", rate), _finite("scale", scale)
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


TOY_LOG_DENSITIES: dict[str, Callable[..., torch.Tensor]] = {
    "eight_gaussians": log_density_eight_gaussians,
    "two_spirals": log_density_two_spirals,
    "checkerboard": log_density_checkerboard,
    "rings": log_density_rings,
    "moons": log_density_moons,
    "pinwheel": log_density_pinwheel,
}


def toy_log_density(type_name: str, params: dict | None, points: torch.Tensor) -> torch.Tensor:
    """Exact log density (float64, CPU, shape (N,)) at ``points`` (N, 2) of the toy ``type_name``
    sampled with keyword parameters ``params`` (as passed to its sampler; a ``batch_size`` key, as
    in the node's config, is ignored; missing keys take the sampler's defaults)."""
    if type_name not in TOY_LOG_DENSITIES:
        known = ", ".join(sorted(TOY_LOG_DENSITIES))
        raise ValueError(f"no exact density for data type '{type_name}' (known: {known})")
    params = {key: value for key, value in (params or {}).items() if key != "batch_size"}
    return TOY_LOG_DENSITIES[type_name](points, **params)


# --- metrics on a grid ---

def normalize_log_density(log_unnormalized: torch.Tensor, cell_area: float) -> torch.Tensor:
    """``log_unnormalized`` (any shape, values at cell centers) shifted to a log density that
    integrates to 1 over the grid (sum of exp times ``cell_area``); float64."""
    values = torch.as_tensor(log_unnormalized).detach().to(device="cpu", dtype=torch.float64)
    if torch.isnan(values).any() or (values == math.inf).any():
        raise ValueError("log density has NaN or +inf values")
    total = torch.logsumexp(values.reshape(-1), dim=0)
    if not torch.isfinite(total):
        raise ValueError("log density has no mass on the grid")
    return values - total - math.log(cell_area)


def kl_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, cell_area: float) -> float:
    """KL(p || q) = sum p log(p / q) cell_area over the grid, after renormalising both over the
    grid (mass outside it is dropped). Cells with p = 0 count 0; a cell with p > 0 = q gives
    +inf. Tiny negative values from rounding are clipped to 0."""
    log_p, log_q = _pair(log_p, log_q, cell_area)
    support = log_p > -math.inf
    if (support & (log_q == -math.inf)).any():
        return math.inf
    terms = torch.where(support, torch.exp(log_p) * (log_p - torch.where(support, log_q, 0.0)), 0.0)
    return max(float(terms.sum()) * cell_area, 0.0)


def total_variation_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, cell_area: float) -> float:
    """Total variation 1/2 sum |p - q| cell_area, in [0, 1], after renormalising both over the grid."""
    log_p, log_q = _pair(log_p, log_q, cell_area)
    return min(0.5 * float(torch.abs(torch.exp(log_p) - torch.exp(log_q)).sum()) * cell_area, 1.0)


def _pair(log_p, log_q, cell_area):
    log_p, log_q = normalize_log_density(log_p, cell_area), normalize_log_density(log_q, cell_area)
    if log_p.shape != log_q.shape:
        raise ValueError(f"log densities have different shapes {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    return log_p, log_q


def histogram_log_density(samples: torch.Tensor, grid: Grid, smoothing: float = 1e-3) -> torch.Tensor:
    """Log density (float64, (n * n,) in ``grid.points()`` order) of the 2-D histogram of
    ``samples`` (N, 2) on ``grid``, mixed with the uniform density on the grid:

        q = (1 - smoothing) * counts / N_in / cell_area + smoothing / (n^2 cell_area)

    where ``N_in`` counts the (finite) samples inside the grid; samples outside are dropped, like
    the data's mass outside the grid. This is a pseudo-count of
    ``smoothing * N_in / ((1 - smoothing) n^2)`` in every cell, chosen as a fixed total mass
    rather than a fixed count per cell so that it distorts the histogram by at most ``smoothing``
    in total variation whatever the grid size, while every empty cell keeps a finite log density
    (so KL(p_data || histogram) is finite). ``smoothing=0`` gives ``-inf`` in empty cells."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), found {smoothing}")
    samples = _points64(samples)
    cell = torch.floor((samples - grid.low) / grid.width)
    inside = (torch.isfinite(samples).all(dim=1) & (samples >= grid.low).all(dim=1)
              & (samples < grid.high).all(dim=1))
    cell = cell[inside].long().clamp_(0, grid.n - 1)  # clamp: rounding at the upper edge
    if len(cell) == 0:
        raise ValueError("no sample falls inside the grid")
    counts = torch.bincount(cell[:, 0] * grid.n + cell[:, 1], minlength=grid.n ** 2).to(torch.float64)
    mass = (1 - smoothing) * counts / len(cell) + smoothing / grid.n ** 2
    return torch.log(mass) - math.log(grid.cell_area)


def model_log_density(energy: nn.Module, grid: Grid, batch: int = 65536) -> torch.Tensor:
    """log of exp(-energy) normalised on ``grid`` (float64, (n * n,) in ``grid.points()`` order).

    The energy is evaluated without gradients in eval mode (its train/eval mode is restored
    afterwards), on the device and in the floating dtype of its first floating parameter or buffer
    (float64 on the CPU if it has none); it must return one energy per point, shape (B,) or (B, 1).
    """
    tensors = [t for t in (*energy.parameters(), *energy.buffers()) if t.is_floating_point()]
    device, dtype = (tensors[0].device, tensors[0].dtype) if tensors else (torch.device("cpu"), torch.float64)
    points = grid.points()
    was_training = energy.training
    energy.eval()
    try:
        with torch.no_grad():
            chunks = []
            for chunk in points.split(batch):
                value = energy(chunk.to(device=device, dtype=dtype))
                if value.numel() != len(chunk):
                    raise ValueError(f"energy returned shape {tuple(value.shape)} for {len(chunk)} points")
                chunks.append(value.reshape(-1).to(device="cpu", dtype=torch.float64))
    finally:
        energy.train(was_training)
    log_unnormalized = -torch.cat(chunks)
    if torch.isnan(log_unnormalized).any() or (log_unnormalized == math.inf).any():
        raise ValueError("energy is NaN or -inf on the grid")
    return normalize_log_density(log_unnormalized, grid.cell_area)


def evaluate_2d(type_name: str, params: dict | None, grid: Grid, energy: nn.Module | None = None,
                samples: torch.Tensor | None = None) -> dict[str, float]:
    """Divergences on ``grid`` between the toy's exact density (renormalised over the grid) and
    the model exp(-energy) (``kl_data_model`` = KL(data || model), ``kl_model_data``, ``tv``) and/or
    the histogram of ``samples`` (``kl_data_samples``, ``tv_samples``; see ``histogram_log_density``
    for its smoothing)."""
    log_data = normalize_log_density(toy_log_density(type_name, params, grid.points()), grid.cell_area)
    metrics: dict[str, float] = {}
    if energy is not None:
        log_model = model_log_density(energy, grid)
        metrics["kl_data_model"] = kl_on_grid(log_data, log_model, grid.cell_area)
        metrics["kl_model_data"] = kl_on_grid(log_model, log_data, grid.cell_area)
        metrics["tv"] = total_variation_on_grid(log_data, log_model, grid.cell_area)
    if samples is not None:
        log_hist = histogram_log_density(samples, grid)
        metrics["kl_data_samples"] = kl_on_grid(log_data, log_hist, grid.cell_area)
        metrics["tv_samples"] = total_variation_on_grid(log_data, log_hist, grid.cell_area)
    return metrics
