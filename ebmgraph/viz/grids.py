"""Pictures of samples: image grids and 2-D scatter plots over the data density, saved as PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.patches import Patch
from matplotlib.figure import Figure

from ebmgraph.store.atomic import atomic_path

PAD_VALUE = 1.0
FIGURE_INCHES = 6.0


def image_grid(samples: torch.Tensor, nrow: int | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into an (H', W', 3) array in [0, 1], ``nrow`` images per
    row (about square by default), with 1-pixel padding; grayscale is replicated to RGB and
    non-finite values are mapped into range."""
    if samples.dim() != 4 or samples.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1 or 3, H, W) images, found shape {tuple(samples.shape)}")
    images = np.nan_to_num((_numpy(samples) + 1) / 2).clip(0, 1).transpose(0, 2, 3, 1)
    if images.shape[-1] == 1:
        images = images.repeat(3, axis=-1)
    n, h, w, _ = images.shape
    ncol = nrow or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncol)
    grid = np.full((nrows * (h + 1) + 1, ncol * (w + 1) + 1, 3), PAD_VALUE)
    for i, image in enumerate(images):
        top, left = 1 + (i // ncol) * (h + 1), 1 + (i % ncol) * (w + 1)
        grid[top:top + h, left:left + w] = image
    return grid


def save_samples_png(samples: torch.Tensor, path: str | os.PathLike, title: str = "",
                     reference: torch.Tensor | None = None, nrow: int | None = None) -> None:
    """Save images (N, C, H, W) as a grid (``nrow`` images a row), or 2-D points (N, 2) as a
    scatter over a log-density histogram of ``reference`` (the data) if given."""
    if samples.dim() == 4:
        fig = _image_figure(image_grid(samples, nrow))
    elif samples.dim() == 2 and samples.shape[1] == 2:
        fig = _scatter_figure(_numpy(samples), None if reference is None else _numpy(reference))
    else:
        raise ValueError(f"can only draw (N, C, H, W) images or (N, 2) points, found shape {tuple(samples.shape)}")
    if title:
        fig.axes[0].set_title(title)
    save_figure(fig, Path(path))


def _numpy(points: torch.Tensor) -> np.ndarray:
    return points.detach().float().cpu().numpy()


def _image_figure(grid: np.ndarray) -> Figure:
    """A figure showing ``grid`` with nearest-neighbour upscaling, its longer side FIGURE_INCHES."""
    scale = FIGURE_INCHES / max(grid.shape[:2])
    fig = _figure((grid.shape[1] * scale, grid.shape[0] * scale))
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    return fig


def _figure(size: tuple[float, float]) -> Figure:
    """A figure of ``size`` inches, not managed by pyplot, drawn by the Agg backend."""
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _scatter_figure(points: np.ndarray, reference: np.ndarray | None) -> Figure:
    """Samples as dots over a log-shaded 2-D histogram of ``reference``, with equal axes;
    non-finite points (diverged samplers) are left out."""
    points = _finite_rows(points)
    reference = _finite_rows(np.empty((0, 2)) if reference is None else reference)
    limits = _limits(np.concatenate([points, reference]))
    fig = _figure((FIGURE_INCHES, FIGURE_INCHES))
    ax = fig.add_subplot()
    if len(reference):
        ax.hist2d(reference[:, 0], reference[:, 1], bins=100, range=limits, norm=LogNorm(), cmap="Greys")
    dots = ax.scatter(points[:, 0], points[:, 1], s=10, c="tab:orange", alpha=0.8, edgecolors="black",
                      linewidths=0.3, label="samples")
    if len(reference):
        ax.legend(handles=[dots, Patch(color="grey", label="data density")], loc="upper right", fontsize=8)
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])
    ax.set_aspect("equal")
    return fig


def _finite_rows(points: np.ndarray) -> np.ndarray:
    return points[np.isfinite(points).all(axis=1)]


def _limits(points: np.ndarray) -> np.ndarray:
    """(2, 2) array of [low, high] per axis covering ``points`` with a 5% margin."""
    if not len(points):
        return np.array([[-1.0, 1.0], [-1.0, 1.0]])
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.05 * (high - low).max() + 1e-3
    return np.stack([low - margin, high + margin], axis=1)


def save_figure(fig: Figure, path: Path) -> None:
    """Render ``fig`` as a PNG into ``path`` through ``atomic_path``."""
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", bbox_inches="tight", pad_inches=0.05)