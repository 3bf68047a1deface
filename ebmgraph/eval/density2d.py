"""Divergences between 2-D densities on a grid, against the exact densities of the toy data
(``ebmgraph.nodes.toys``).

Grid metrics (natural log units) take log densities evaluated at the cell centers of a ``Grid``
(flattened as ``Grid.points()``) and renormalise them over the grid first: the data's mass
outside the grid is dropped, as is the model's (which is only ever known up to a constant).
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from ebmgraph.nodes.toys import TOY_TYPES, points64

__all__ = [
    "Grid", "toy_log_density", "toy_cell_log_density", "normalize_log_density", "log_partition", "kl_on_grid", "total_variation_on_grid",
    "histogram_log_density", "model_log_density", "evaluate_2d",
]


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


def toy_log_density(type_name: str, params: dict | None, points: torch.Tensor) -> torch.Tensor:
    """Exact log density (float64, CPU, shape (N,)) at ``points`` (N, 2) of the toy ``type_name``
    with parameters ``params`` (its fields, as in the node's config; a ``batch_size`` key is
    ignored; missing keys take the defaults)."""
    if type_name not in TOY_TYPES:
        known = ", ".join(sorted(TOY_TYPES))
        raise ValueError(f"no exact density for data type '{type_name}' (known: {known})")
    params = {key: value for key, value in (params or {}).items() if key != "batch_size"}
    return TOY_TYPES[type_name](**params).log_density(points)


def toy_cell_log_density(type_name: str, params: dict | None, grid: Grid, refine: int = 8) -> torch.Tensor:
    """log of the toy's mean density over each cell of ``grid`` (float64, (n * n,) in
    ``grid.points()`` order): ``refine`` x ``refine`` midpoints per cell, averaged. This is the
    cell mass a histogram estimates; the density at the cell center is not, where the density
    changes within a cell (a thin ring on a coarse grid)."""
    fine = Grid(grid.low, grid.high, grid.n * refine)
    values = toy_log_density(type_name, params, fine.points()).reshape(grid.n, refine, grid.n, refine)
    return (torch.logsumexp(values, dim=(1, 3)) - 2 * math.log(refine)).reshape(-1)


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
    samples = points64(samples)
    cell = torch.floor((samples - grid.low) / grid.width)
    inside = (torch.isfinite(samples).all(dim=1) & (samples >= grid.low).all(dim=1)
              & (samples < grid.high).all(dim=1))
    cell = cell[inside].long().clamp_(0, grid.n - 1)  # clamp: rounding at the upper edge
    if len(cell) == 0:
        raise ValueError("no sample falls inside the grid")
    counts = torch.bincount(cell[:, 0] * grid.n + cell[:, 1], minlength=grid.n ** 2).to(torch.float64)
    mass = (1 - smoothing) * counts / len(cell) + smoothing / grid.n ** 2
    return torch.log(mass) - math.log(grid.cell_area)


def log_partition(energy: nn.Module, grid: Grid) -> float:
    """log Z of exp(-energy) over the box of ``grid`` (its cells' sum)."""
    return float(torch.logsumexp(-_grid_energies(energy, grid), 0) + math.log(grid.cell_area))


def model_log_density(energy: nn.Module, grid: Grid, batch: int = 65536) -> torch.Tensor:
    """log of exp(-energy) normalised on ``grid`` (float64, (n * n,) in ``grid.points()`` order).

    The energy is evaluated without gradients in eval mode (its train/eval mode is restored
    afterwards), on the device and in the floating dtype of its first floating parameter or buffer
    (float64 on the CPU if it has none); it must return one energy per point, shape (B,) or (B, 1).
    """
    log_unnormalized = -_grid_energies(energy, grid, batch)
    if torch.isnan(log_unnormalized).any() or (log_unnormalized == math.inf).any():
        raise ValueError("energy is NaN or -inf on the grid")
    return normalize_log_density(log_unnormalized, grid.cell_area)


def _grid_energies(energy: nn.Module, grid: Grid, batch: int = 65536) -> torch.Tensor:
    """The energy at every grid point, float64 on the CPU (see ``model_log_density``)."""
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
    return torch.cat(chunks)


def evaluate_2d(type_name: str, params: dict | None, grid: Grid, energy: nn.Module | None = None,
                samples: torch.Tensor | None = None) -> dict[str, float]:
    """Divergences on ``grid`` between the toy's exact density (renormalised over the grid) and
    the model exp(-energy) (``kl_data_model`` = KL(data || model), ``kl_model_data``, ``tv``) and/or
    the histogram of ``samples`` (``kl_data_samples``, ``tv_samples``, against the data's mean
    density per cell, ``toy_cell_log_density``; see ``histogram_log_density`` for its smoothing)."""
    log_data = normalize_log_density(toy_log_density(type_name, params, grid.points()), grid.cell_area)
    metrics: dict[str, float] = {}
    if energy is not None:
        log_model = model_log_density(energy, grid)
        metrics["kl_data_model"] = kl_on_grid(log_data, log_model, grid.cell_area)
        metrics["kl_model_data"] = kl_on_grid(log_model, log_data, grid.cell_area)
        metrics["tv"] = total_variation_on_grid(log_data, log_model, grid.cell_area)
    if samples is not None:
        log_data = normalize_log_density(toy_cell_log_density(type_name, params, grid), grid.cell_area)
        log_hist = histogram_log_density(samples, grid)
        metrics["kl_data_samples"] = kl_on_grid(log_data, log_hist, grid.cell_area)
        metrics["tv_samples"] = total_variation_on_grid(log_data, log_hist, grid.cell_area)
    return metrics
