"""The matplotlib renderer: a ``Drawing`` at its ``layout`` drawn to .png or .svg (no system program).
Coordinates are inches: the figure is exactly as large as the layout, so text never scales.
"""

from __future__ import annotations

import math
from pathlib import Path

from ebmgraph.viz.description import DELAY_COLOR, DELAY_MARK, LINK_KINDS, Drawing, Link, Vertex, group_style
from ebmgraph.viz.layout import (
    LABEL_SIZE, NAME_SIZE, TYPE_SIZE, Box, Point, Route, layout, place_labels, routes, text_width)

TITLE_SIZE, LEGEND_SIZE, MARGIN = 12.0, 8.0, 0.35
DPI = 120  # of PNG drawings: the smallest text (LABEL_SIZE points) is LABEL_SIZE * DPI / 72 pixels high


def render_matplotlib(drawing: Drawing, path: Path) -> None:
    """Draw with matplotlib (Agg, no pyplot) to .png or .svg; deterministic SVG (fixed hash salt, no date)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    at = layout(drawing)
    paths = routes(drawing, at)
    labels = place_labels(drawing, at.boxes, paths)
    extent = _extent(drawing, at.boxes, paths, labels)
    legend_rows, legend_columns = _legend_shape(drawing, extent[2] - extent[0])
    legend_height = 0.19 * legend_rows + 0.2
    x0, y0, x1, y1 = extent[0] - MARGIN, extent[1] - MARGIN - legend_height, extent[2] + MARGIN, extent[3] + 0.7
    with matplotlib.rc_context({"svg.hashsalt": "ebmgraph", "path.simplify": False}):
        fig = Figure(figsize=(x1 - x0, y1 - y0))
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_axis_off()
        patches = {v.id: _draw_vertex(ax, v, at.boxes[v.id]) for v in drawing.vertices}
        for link, route, label_at in zip(drawing.links, paths, labels):
            _draw_link(ax, link, route, patches, label_at)
        ax.text((x0 + x1) / 2, y1 - 0.3, drawing.title, ha="center", va="center", fontsize=TITLE_SIZE,
                weight="bold")
        ax.legend(handles=_legend_handles(drawing), loc="lower center", bbox_to_anchor=(0.5, 0.0),
                  ncol=legend_columns, frameon=False, fontsize=LEGEND_SIZE, handlelength=2.6)
        metadata = {"Date": None, "Creator": "ebmgraph draw"} if path.suffix.lower() == ".svg" else {}
        fig.savefig(path, dpi=DPI, metadata=metadata, facecolor="white")


def _extent(drawing: Drawing, boxes: dict[str, Box], paths: list[Route], labels: list[Point]):
    xs, ys = [], []
    for box in boxes.values():
        bx0, by0, bx1, by1 = box.bounds()
        xs += [bx0, bx1]
        ys += [by0, by1]
    for link, route, (x, y) in zip(drawing.links, paths, labels):
        xs += [p[0] for p in route.points()]
        ys += [p[1] for p in route.points()]
        half = text_width(link.label, LABEL_SIZE) / 2 + 0.05
        xs += [x - half, x + half]
        ys += [y - 0.08, y + 0.08]
    return min(xs), min(ys), max(xs), max(ys)


def _draw_vertex(ax, vertex: Vertex, box: Box):
    from matplotlib.patches import FancyBboxPatch

    _, fill, stroke = group_style(vertex.group)
    x0, y0, _, _ = box.bounds()
    patch = FancyBboxPatch((x0, y0), box.width, box.height, boxstyle="round,pad=0,rounding_size=0.09",
                           facecolor=fill, edgecolor=stroke, linewidth=1.3, zorder=2)
    ax.add_patch(patch)
    ax.text(box.x, box.y + 0.09, vertex.name, ha="center", va="center", fontsize=NAME_SIZE, weight="bold", zorder=3)
    ax.text(box.x, box.y - 0.12, vertex.type, ha="center", va="center", fontsize=TYPE_SIZE, color="#444444",
            style="italic", zorder=3)
    return patch


def _draw_link(ax, link: Link, route: Route, patches, label_at: Point) -> None:
    from matplotlib.patches import FancyArrowPatch

    style = {"arrowstyle": "-|>", "mutation_scale": 11, "color": link.color, "zorder": 1,
             "linewidth": 2.4 if link.delay else 1.2, "linestyle": (0, (4, 2.5)) if link.dashed else "-"}
    if route.corners:
        arrow = FancyArrowPatch(path=_rounded(route.points()), **style)
    else:
        source, target = patches[link.source], patches[link.target]
        arrow = FancyArrowPatch(posA=route.start, posB=route.end, patchA=source, patchB=target, shrinkA=1, shrinkB=1,
                                connectionstyle=f"arc3,rad={route.rad:.4f}", **style)
    ax.add_patch(arrow)
    ax.text(*label_at, link.label, ha="center", va="center", fontsize=LABEL_SIZE, color=link.color, zorder=4,
            bbox={"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})


def _rounded(points: list[Point], radius: float = 0.1):
    """A matplotlib Path through ``points`` with its corners rounded."""
    from matplotlib.path import Path as MplPath

    vertices, codes = [points[0]], [MplPath.MOVETO]
    for before, corner, after in zip(points, points[1:], points[2:]):
        r = min(radius, math.dist(before, corner) / 2, math.dist(corner, after) / 2)
        vertices += [_toward(corner, before, r), corner, _toward(corner, after, r)]
        codes += [MplPath.LINETO, MplPath.CURVE3, MplPath.CURVE3]
    vertices.append(points[-1])
    codes.append(MplPath.LINETO)
    return MplPath(vertices, codes)


def _toward(start: Point, end: Point, distance: float) -> Point:
    length = math.dist(start, end) or 1.0
    return start[0] + (end[0] - start[0]) * distance / length, start[1] + (end[1] - start[1]) * distance / length


def _legend_handles(drawing: Drawing) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for group in drawing.groups():
        title, fill, stroke = group_style(group)
        handles.append(Patch(facecolor=fill, edgecolor=stroke, label=title))
    kinds = [k for k in LINK_KINDS if any(link.kind == k for link in drawing.links)]
    handles += [Line2D([], [], color=LINK_KINDS[k][1], lw=1.2, label=LINK_KINDS[k][0]) for k in kinds]
    if any(link.dashed for link in drawing.links):
        handles.append(Line2D([], [], color="#404040", lw=1.2, ls=(0, (4, 2.5)), label="dashed: stops the gradient"))
    if any(link.delay for link in drawing.links):
        handles.append(Line2D([], [], color=DELAY_COLOR, lw=2.4, label=f"{DELAY_MARK}: bank delay (next step)"))
    return handles


def _legend_shape(drawing: Drawing, width: float) -> tuple[int, int]:
    count = len(_legend_handles(drawing))
    columns = max(1, min(count, int(width // 2.3)))
    return math.ceil(count / columns), columns
