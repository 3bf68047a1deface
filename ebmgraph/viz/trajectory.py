"""Chains over their steps: a strip of snapshots (images) or trajectories over the data (2-D points),
with the energy E(x) of every chain against the Langevin step, like the transition figures of the
EBM papers."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import numpy as np
import torch

from ebmgraph.viz.grids import _figure, _finite_rows, _limits, save_figure, image_grid

CHAIN_COLORS = "tab10"


@attrs.define
class Trajectory:
    """``states[s]``: the chains after ``steps[s]`` kernel steps (s = 0 is the initial noise), on the CPU;
    ``energies[s]``: E(x) of every chain there (shape (S + 1, n))."""

    steps: list[int]
    states: torch.Tensor
    energies: np.ndarray


def segment_bounds(steps: int, snapshots: int) -> list[int]:
    """Step counts after each of ``min(snapshots, steps)`` segments of (nearly) equal length, from 0 to ``steps``."""
    segments = max(1, min(snapshots, steps))
    return [round(i * steps / segments) for i in range(segments + 1)]


def run_trajectory(evaluation, steps: int, n: int = 8, snapshots: int = 10) -> Trajectory:
    """``n`` fresh chains from the evaluation's initial states (also for a graph that evaluates a
    bank) through its kernel (with its augmentation transitions, if any), ``steps`` steps in
    ``snapshots`` segments. Latent chains are pictured decoded; energies are of the chain states."""
    energy = evaluation.energy
    bounds = segment_bounds(steps, snapshots)
    x = evaluation.initial_states(n)
    states, energies = [evaluation.decoded(x).detach().cpu()], [_energy(energy, x)]
    for start, end in zip(bounds, bounds[1:]):
        x = evaluation.chains(x, end, start)
        states.append(evaluation.decoded(x).detach().cpu())
        energies.append(_energy(energy, x))
    return Trajectory(bounds, torch.stack(states), np.stack(energies))


def _energy(energy: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return energy(x).detach().float().cpu().numpy()


def save_trajectory_png(evaluation, path: str | os.PathLike, steps: int, n: int = 8, snapshots: int = 10) -> Path:
    """Run :func:`run_trajectory` and save one PNG: the strip (images) or the trajectories over the
    data (2-D points), above the energy profile of every chain."""
    path = Path(path)
    trajectory = run_trajectory(evaluation, steps, n, snapshots)
    states = trajectory.states
    kernel_type = evaluation.program.spec.all_nodes()[evaluation.kernel_name].type
    augment = (f", augmented every {evaluation.eval.augment_every} steps" if evaluation.eval.augment else "")
    title = (f"{evaluation.spec.name}: {states.shape[1]} chains, {steps} {kernel_type} steps{augment} "
             f"from {evaluation.eval.init} noise (energy '{evaluation.energy_name}')")
    if states.dim() == 5:
        fig = _strip_figure(trajectory)
    elif states.dim() == 3 and states.shape[2] == 2:
        data = evaluation.program.nodes["data"]
        fig = _paths_figure(trajectory, data.reference(2000).detach().float().cpu().numpy())
    else:
        fig = _figure((8.0, 3.2))
        _energy_axes(fig.add_subplot(), trajectory)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / fig.get_figheight(), va="top")
    save_figure(fig, path)
    return path


def _strip_figure(trajectory: Trajectory):
    """Rows: chains; columns: snapshots labelled with their step; the energy profile below."""
    states = trajectory.states  # (S + 1, n, C, H, W)
    columns, n = states.shape[:2]
    h, w = states.shape[-2:]
    grid = image_grid(states.transpose(0, 1).reshape(columns * n, *states.shape[2:]), nrow=columns)
    width, left, right = 9.0, 0.8, 0.2  # inches
    strip_width = width - left - right
    strip_height = min(strip_width * grid.shape[0] / grid.shape[1], 9.0)
    strip_width = strip_height * grid.shape[1] / grid.shape[0]
    top, gap, profile_height, bottom = 0.85, 0.45, 2.4, 0.5
    height = top + strip_height + gap + profile_height + bottom
    fig = _figure((width, height))
    strip = fig.add_axes((left / width, (bottom + profile_height + gap) / height, strip_width / width,
                          strip_height / height))
    strip.imshow(grid, interpolation="nearest")
    strip.set_xticks([1 + c * (w + 1) + w / 2 - 0.5 for c in range(columns)],
                     [str(s) for s in trajectory.steps], fontsize=8)
    strip.set_yticks([1 + r * (h + 1) + h / 2 - 0.5 for r in range(n)], [f"chain {r}" for r in range(n)], fontsize=8)
    strip.xaxis.tick_top()
    strip.xaxis.set_label_position("top")
    strip.set_xlabel("after Langevin step", fontsize=9)
    strip.tick_params(length=0)
    for label, color in zip(strip.get_yticklabels(), _colors(n)):  # the colour of the chain's energy line
        label.set_color(color)
    for side in strip.spines.values():
        side.set_visible(False)
    profile = fig.add_axes((left / width, bottom / height, (width - left - right) / width, profile_height / height))
    _energy_axes(profile, trajectory)
    return fig


def _paths_figure(trajectory: Trajectory, reference: np.ndarray):
    """Each chain as a line through its snapshots over the data's log-density histogram, from an
    open circle (start) to a filled dot (end); the energy profile on the right."""
    from matplotlib.colors import LogNorm

    points = trajectory.states.numpy()  # (S + 1, n, 2)
    fig = _figure((12.0, 5.4))
    ax = fig.add_axes((0.05, 0.1, 0.42, 0.78))
    reference = _finite_rows(reference)
    limits = _limits(np.concatenate([_finite_rows(points.reshape(-1, 2)), reference]))
    if len(reference):
        ax.hist2d(reference[:, 0], reference[:, 1], bins=100, range=limits, norm=LogNorm(), cmap="Blues")
    colors = _colors(points.shape[1])
    for chain in range(points.shape[1]):
        path = points[:, chain]
        ax.plot(path[:, 0], path[:, 1], "-", color=colors[chain], lw=1.2, alpha=0.85, marker=".", ms=4)
        ax.plot(*path[0], "o", mfc="none", mec=colors[chain], ms=7, mew=1.5)
        ax.plot(*path[-1], "o", color=colors[chain], ms=7, mec="black", mew=0.6)
    ax.plot([], [], "o", mfc="none", mec="gray", label="start (noise)")
    ax.plot([], [], "o", color="gray", mec="black", mew=0.6, label=f"end (step {trajectory.steps[-1]})")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])
    ax.set_aspect("equal")
    ax.set_title("chains over the data density", fontsize=9)
    _energy_axes(fig.add_axes((0.56, 0.1, 0.42, 0.78)), trajectory)
    return fig


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps[CHAIN_COLORS]
    return [cmap(i % cmap.N) for i in range(n)]


def _energy_axes(ax, trajectory: Trajectory) -> None:
    """E(x) of every chain (thin) and their mean (thick) against the Langevin step."""
    from matplotlib.ticker import MaxNLocator

    steps, energies = np.asarray(trajectory.steps), trajectory.energies
    for chain, color in zip(energies.T, _colors(energies.shape[1])):
        ax.plot(steps, chain, "-", color=color, lw=0.8, alpha=0.6)
    ax.plot(steps, np.nanmean(energies, axis=1), "-o", color="black", lw=2.0, ms=3.5, label="mean over chains")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Langevin step", fontsize=9)
    ax.set_ylabel("energy E(x)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
