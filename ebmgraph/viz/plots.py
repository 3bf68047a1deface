"""Plots of a run's logs for ``ebmgraph report``: metrics.jsonl keys grouped into panels by their
name pattern (no per-graph code), eval.jsonl metrics over time, bank statistics. Every function
returns PNG bytes; figures are drawn by the Agg backend outside pyplot, so no global state is kept."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import numpy as np
from matplotlib.ticker import MaxNLocator

from ebmgraph.viz.grids import _figure

PANEL_SIZE = (7.5, 3.6)
SMOOTH_ABOVE = 40  # more points than this: draw the raw curve faint and an EMA over it


@attrs.frozen
class Panel:
    """A plot of the metric ``keys`` against the training step."""

    slug: str
    title: str
    ylabel: str
    keys: tuple[str, ...]
    description: str = ""


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of ``path``, one a line; missing file: none. A partly written last line
    (a run still writing) and blank lines are skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def is_scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalar_keys(records: Iterable[dict], skip: tuple[str, ...] = ("step",)) -> list[str]:
    """Every key with a number in some record, in first-seen order."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in skip and is_scalar(value):
                keys.setdefault(key, None)
    return list(keys)


def series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over the records that have it as a number."""
    points = [(r["step"], r[key]) for r in records if is_scalar(r.get(key)) and is_scalar(r.get("step"))]
    if not points:
        return np.empty(0), np.empty(0)
    steps, values = zip(*points)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _suffix(*names: str) -> Callable[[str], bool]:
    return lambda key: "/" in key and key.rsplit("/", 1)[1] in names


# (slug, title, y label, description, key predicate); a key goes to the first panel that takes it.
# ``optimizer`` keys (OPTIMIZER/grad_norm) are told apart from kernels' by the graph's optimizer names.
PANEL_RULES: list[tuple[str, str, str, str, Callable[[str], bool]]] = [
    ("losses", "Losses", "loss", "every loss of the graph (loss/NAME), as minimized",
     lambda key: key.startswith("loss/")),
    ("contrastive_divergence", "Energies of positives and negatives", "energy",
     "E+ (data) and E- (samples) of each contrastive-divergence loss, and their gap E- - E+",
     _suffix("E+", "E-", "gap")),
    ("kernel_grad_norms", "Kernel gradient norms", "mean per-sample ‖∇x E‖",
     "the norm of the energy's gradient at the chains' last step, per kernel", _suffix("grad_norm")),
    ("chain_energies", "Chain energies", "mean E(x)",
     "mean energy at the start and at the end of each kernel's chains", _suffix("energy_start", "energy_end")),
    ("acceptance", "MALA acceptance rate", "acceptance", "fraction of accepted proposals", _suffix("acceptance")),
    ("mobility", "Chain mobility", "‖x_K − x_0‖ / (b √(K d))",
     "distance the chains moved over what their noise alone would move (1: free diffusion; near 0: stuck)",
     _suffix("mobility")),
    ("bank_age", "Bank age", "mean age (steps)", "mean number of steps since each bank item was drawn as noise",
     _suffix("age")),
    ("bank_reinit", "Bank re-initialization", "fraction", "fraction of each batch drawn from fresh noise",
     _suffix("reinit_fraction")),
    ("learning_rates", "Learning rates", "learning rate", "each scheduled optimizer's learning rate at the step",
     _suffix("lr")),
    ("steps_per_second", "Throughput", "steps / second", "training steps per second",
     lambda key: key == "steps_per_second"),
]


def metric_panels(keys: list[str], optimizers: Iterable[str] = ()) -> list[Panel]:
    """The panels for these metrics.jsonl keys; keys no rule takes go to a last 'Other diagnostics' panel."""
    optimizers = set(optimizers)
    is_optimizer_norm = lambda key: key.endswith("/grad_norm") and key.rsplit("/", 1)[0] in optimizers  # noqa: E731
    rules = [("optimizer_grad_norms", "Optimizer gradient norms", "‖∇θ loss‖",
              "parameter-gradient norm of each optimizer with clip_grad_norm (before clipping)",
              is_optimizer_norm)] + PANEL_RULES
    taken: dict[str, list[str]] = {rule[0]: [] for rule in rules}
    other = []
    for key in keys:
        for slug, *_, accepts in rules:
            if accepts(key):
                taken[slug].append(key)
                break
        else:
            other.append(key)
    panels = [Panel(slug, title, ylabel, tuple(taken[slug]), description)
              for slug, title, ylabel, description, _ in rules if taken[slug]]
    if other:
        panels.append(Panel("other", "Other diagnostics", "value", tuple(other), "metrics no other panel shows"))
    return panels


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.08)
    fig.clear()
    return buffer.getvalue()


def ema(values: np.ndarray, points: int) -> np.ndarray:
    """Exponential moving average with a span of about 1/20 of the points (bias-corrected)."""
    alpha = 2.0 / (max(points // 20, 2) + 1)
    out = np.empty_like(values)
    mean, weight = 0.0, 0.0
    for i, value in enumerate(values):
        if math.isfinite(value):
            mean = (1 - alpha) * mean + alpha * value
            weight = (1 - alpha) * weight + alpha
        out[i] = mean / weight if weight else math.nan
    return out


def _wants_log(all_values: list[np.ndarray]) -> bool:
    values = np.concatenate([v[np.isfinite(v)] for v in all_values]) if all_values else np.empty(0)
    return bool(len(values)) and bool((values > 0).all()) and values.max() / values.min() > 1000


SCALE_FLOOR = 0.1  # a series varying over less than this fraction of an axis's range gets an axis of its own


def _extent(values: np.ndarray, log: bool) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if log:
        finite = np.log10(finite)
    return (float(finite.min()), float(finite.max())) if len(finite) else (math.nan, math.nan)


def scale_groups(extents: dict[str, tuple[float, float]], floor: float = SCALE_FLOOR) -> list[list[str]]:
    """The keys split into axis groups that share one scale: in each group every series varies over
    at least ``floor`` of the group's whole range (or all of them are constant). Widest series
    first; each joins the first group that stays within that rule."""
    def fits(members: list[str]) -> bool:
        low = min(extents[k][0] for k in members)
        high = max(extents[k][1] for k in members)
        spans = [extents[k][1] - extents[k][0] for k in members]
        return high - low == 0 or min(spans) >= floor * (high - low)

    groups: list[list[str]] = []
    for key in sorted(extents, key=lambda k: -(extents[k][1] - extents[k][0])):
        for group in groups:
            if fits(group + [key]):
                group.append(key)
                break
        else:
            groups.append([key])
    order = list(extents)
    return sorted((sorted(group, key=order.index) for group in groups), key=lambda g: order.index(g[0]))


def line_figure(panel: Panel, records: list[dict]):
    """The panel's keys against the step, one labelled line each (many points: faint raw + EMA),
    on as many stacked axes as their scales need (``scale_groups``), sharing the step axis."""
    data = {key: series(records, key) for key in panel.keys}
    data = {key: value for key, value in data.items() if len(value[0])}
    log = _wants_log([values for _, values in data.values()])
    extents = {key: _extent(values, log) for key, (_, values) in data.items()}
    groups = scale_groups({k: e for k, e in extents.items() if math.isfinite(e[0])}) or [list(data)]
    fig = _figure((PANEL_SIZE[0], PANEL_SIZE[1] + 2.2 * (len(groups) - 1)))
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    colors = {key: f"C{index % 10}" for index, key in enumerate(panel.keys)}
    for ax, group in zip(axes, groups):
        for key in group:
            steps, values = data[key]
            style = "--" if key.endswith(("/energy_start", "/E+")) else "-"
            if len(steps) > SMOOTH_ABOVE:
                ax.plot(steps, values, style, color=colors[key], lw=0.7, alpha=0.3)
                ax.plot(steps, ema(values, len(values)), style, color=colors[key], lw=1.8, label=key)
            else:
                ax.plot(steps, values, style, color=colors[key], lw=1.6, marker="o" if len(steps) < 12 else None,
                        ms=3, label=key)
        drawn = [data[key][1] for key in group]
        if log:
            ax.set_yscale("log")
        if any(key.endswith("/gap") for key in group) or (
                panel.slug == "losses" and any(np.nanmin(v) < 0 < np.nanmax(v) for v in drawn)):
            ax.axhline(0.0, color="gray", lw=0.8, zorder=0)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8, loc="best", ncol=1 if len(group) <= 6 else 2)
    axes[0].set_title(panel.title + (" (one axis per scale)" if len(groups) > 1 else ""), fontsize=11)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("training step")
    if any(len(steps) > SMOOTH_ABOVE for steps, _ in data.values()):
        axes[-1].text(0.0, -0.22 / len(groups), "thin: logged values; thick: exponential moving average",
                      transform=axes[-1].transAxes, fontsize=7, color="gray")
    return fig


def line_panel(panel: Panel, records: list[dict]) -> bytes:
    """``line_figure`` as PNG bytes."""
    return png_bytes(line_figure(panel, records))


def eval_panel(eval_records: list[dict]) -> tuple[bytes, list[str]] | None:
    """Every scalar metric of eval.jsonl that changes over the evaluations against the step, one
    small plot each (PNG, metric names); None when no metric changes (a single evaluation, or
    constants such as ``n`` or ``fd_floor``: the report's table shows those)."""
    metrics = [{"step": r.get("step"), **r.get("metrics", {})} for r in eval_records if isinstance(r.get("metrics"), dict)]
    names = [name for name in scalar_keys(metrics) if len(set(series(metrics, name)[1].tolist())) > 1]
    if not names:
        return None
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    width, height = 3.3 * columns, 2.5 * rows + 0.5
    fig = _figure((width, height))
    axes = fig.subplots(rows, columns, squeeze=False)
    fig.subplots_adjust(left=0.55 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.75 / height,
                        wspace=0.35, hspace=0.75)
    for ax, name in zip(axes.flat, names):
        steps, values = series(metrics, name)
        ax.plot(steps, values, "-o", color="C0", lw=1.5, ms=4)
        ax.set_title(f"{name}: {values[-1]:.4g}" if len(values) else name, fontsize=10)
        if 0 < len(steps) <= 6:
            ax.set_xticks(steps, [f"{s:g}" for s in steps])  # the evaluated steps themselves
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    fig.suptitle("Evaluation metrics over training (eval.jsonl); each title gives the last value", fontsize=11,
                 y=1 - 0.1 / height, va="top")
    return png_bytes(fig), names


def bars_panel(title: str, values: list[float], xlabel: str, ylabel: str = "count") -> bytes:
    """A list-valued metric (e.g. the class histogram of mode coverage) as bars."""
    fig = _figure((6.0, 2.8))
    ax = fig.add_subplot()
    ax.bar(range(len(values)), values, color="C0")
    ax.set_xticks(range(len(values)))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def histogram_panel(title: str, values: np.ndarray, xlabel: str) -> bytes:
    fig = _figure((6.0, 2.8))
    ax = fig.add_subplot()
    values = values[np.isfinite(values)]
    integers = len(values) and bool((values == np.round(values)).all()) and values.max() - values.min() <= 60
    bins = np.arange(values.min(), values.max() + 2) - 0.5 if integers else 50
    ax.hist(values, bins=bins, color="C0", edgecolor="white", linewidth=0.5)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "panel"
