"""Layered layout of a ``Drawing`` in inches: vertex boxes in columns (networkx layering,
barycenter ordering), link routes and label positions. Pure geometry; text is measured in
matplotlib's default font so that the renderer's figure is exactly as large as the layout.
"""

from __future__ import annotations

import functools
import math

import attrs
import networkx as nx

from ebmgraph.viz.description import Drawing

NAME_SIZE, TYPE_SIZE, LABEL_SIZE = 9.5, 8.0, 7.0
BOX_HEIGHT, ROW_PITCH, MIN_GAP, LANE_PITCH = 0.52, 0.95, 1.1, 0.3
LABEL_STEPS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8)

Point = tuple[float, float]


@attrs.define
class Box:
    x: float
    y: float
    width: float
    height: float = BOX_HEIGHT

    def bounds(self) -> tuple[float, float, float, float]:
        return self.x - self.width / 2, self.y - self.height / 2, self.x + self.width / 2, self.y + self.height / 2


@attrs.frozen
class Layout:
    """Vertex boxes, the column of every vertex and the (left, right) edges of every column."""

    boxes: dict[str, Box]
    column: dict[str, int]
    spans: list[tuple[float, float]]


@attrs.frozen
class Route:
    """A link's path: an arc3 curve of bend ``rad`` between box centers, or (feedback links) a
    polyline through ``corners`` whose horizontal middle segment runs above or below the picture."""

    start: Point
    end: Point
    rad: float = 0.0
    corners: tuple[Point, ...] = ()

    def at(self, t: float) -> Point:
        """A point a fraction ``t`` along the curve, or along the polyline's middle segment."""
        if self.corners:
            (x0, y0), (x1, y1) = self.corners[1], self.corners[2]
            return x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        (x0, y0), (cx, cy), (x2, y2) = self.start, self.control(), self.end
        u = 1 - t
        return u * u * x0 + 2 * u * t * cx + t * t * x2, u * u * y0 + 2 * u * t * cy + t * t * y2

    def control(self) -> Point:
        (x0, y0), (x2, y2) = self.start, self.end
        return (x0 + x2) / 2 + self.rad * (y2 - y0), (y0 + y2) / 2 - self.rad * (x2 - x0)

    def points(self, n: int = 40) -> list[Point]:
        if self.corners:
            return [self.start, *self.corners, self.end]
        return [self.at(i / n) for i in range(n + 1)]


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in inches of one line of text in matplotlib's default font."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    return text_to_path.get_text_width_height_descent(text, prop, ismath=False)[0] / 72 if text else 0.0


def _flow_graph(drawing: Drawing) -> nx.DiGraph:
    """Vertices and the links that go with the flow (feedback links left out): acyclic."""
    graph = nx.DiGraph()
    graph.add_nodes_from(v.id for v in drawing.vertices)
    graph.add_edges_from((link.source, link.target) for link in drawing.links if not link.feedback)
    return graph


def layers(drawing: Drawing) -> dict[str, int]:
    """Column of every vertex: topological generations of the flow, optimizers in the last column,
    then each vertex moved right up to the column before its first successor (shorter edges)."""
    graph = _flow_graph(drawing)
    column = {v: i for i, generation in enumerate(nx.topological_generations(graph)) for v in generation}
    last = max(column.values())
    column.update({v.id: last for v in drawing.vertices if v.kind == "optimizer"})
    for vertex in reversed(list(nx.topological_sort(graph))):
        successors = [column[s] for s in graph.successors(vertex)]
        if successors:
            column[vertex] = max(column[vertex], min(successors) - 1)
    return column


def column_orders(drawing: Drawing, column: dict[str, int], sweeps: int = 6) -> list[list[str]]:
    """Vertices of each column, top to bottom, ordered by barycenter sweeps to cut crossings."""
    columns: list[list[str]] = [[] for _ in range(max(column.values()) + 1)]
    for v in drawing.vertices:
        columns[column[v.id]].append(v.id)
    graph = _flow_graph(drawing)
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        rank = _ranks(columns)
        for index in (range(1, len(columns)) if forward else range(len(columns) - 2, -1, -1)):
            columns[index] = _by_barycenter(columns[index], graph.predecessors if forward else graph.successors, rank)
            rank.update(_ranks([columns[index]]))
    return columns


def _ranks(columns: list[list[str]]) -> dict[str, float]:
    """Position of each vertex in its column, centered so columns of different sizes line up."""
    return {v: i - (len(members) - 1) / 2 for members in columns for i, v in enumerate(members)}


def _by_barycenter(members: list[str], neighbours, rank: dict[str, float]) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[float, int]:
        index, vertex = item
        near = [rank[n] for n in neighbours(vertex) if n in rank]
        return (sum(near) / len(near) if near else index - (len(members) - 1) / 2, index)
    return [v for _, v in sorted(enumerate(members), key=key)]


def layout(drawing: Drawing) -> Layout:
    """Boxes in inches: columns left to right, separated by room for the widest edge label."""
    column = layers(drawing)
    widths = {v.id: max(text_width(v.name, NAME_SIZE, bold=True), text_width(v.type, TYPE_SIZE)) + 0.3
              for v in drawing.vertices}
    labels = [text_width(link.label, LABEL_SIZE) for link in drawing.links if not link.feedback]
    gap = max([MIN_GAP] + [w + 0.35 for w in labels])
    boxes, spans, x = {}, [], 0.0
    for members in column_orders(drawing, column):
        width = max((widths[v] for v in members), default=1.0)
        left = x + gap if spans else 0.0
        for i, vertex in enumerate(members):
            boxes[vertex] = Box(left + width / 2, ((len(members) - 1) / 2 - i) * ROW_PITCH, widths[vertex])
        spans.append((left, left + width))
        x = left + width
    return Layout(boxes, column, spans)


def routes(drawing: Drawing, at: Layout) -> list[Route]:
    """Forward links: straight between neighbours, bowed around boxes in between, parallel links
    fanned out. Feedback links: around the picture, delays above and optimizer updates below."""
    forward, seen = {}, {}
    for index, link in enumerate(drawing.links):
        if not link.feedback:
            a, b = at.boxes[link.source], at.boxes[link.target]
            repeat = seen[(link.source, link.target)] = seen.get((link.source, link.target), -1) + 1
            rad = _detour(a, b, at.boxes)
            forward[index] = Route((a.x, a.y), (b.x, b.y), rad + math.copysign(0.18 * repeat, rad or 1.0))
    ys = [y for b in at.boxes.values() for y in b.bounds()[1::2]] + \
         [p[1] for route in forward.values() for p in route.points()]
    by_index = {**forward, **_feedback_routes(drawing, at, max(ys), min(ys))}
    return [by_index[i] for i in range(len(drawing.links))]


def _detour(a: Box, b: Box, boxes: dict[str, Box]) -> float:
    """0 if the straight line clears every other box, else the smallest bow (either side) that does."""
    for magnitude in (0.0, 0.1, 0.18, 0.26, 0.35, 0.45):
        for rad in ((magnitude, -magnitude) if magnitude else (0.0,)):
            route = Route((a.x, a.y), (b.x, b.y), rad)
            if not any(_hits(route, box) for box in boxes.values() if box is not a and box is not b):
                return rad
    return 0.3


def _hits(route: Route, box: Box, pad: float = 0.06) -> bool:
    x0, y0, x1, y1 = box.bounds()
    return any(x0 - pad <= x <= x1 + pad and y0 - pad <= y <= y1 + pad for x, y in route.points()[1:-1])


def _feedback_routes(drawing: Drawing, at: Layout, top: float, bottom: float) -> dict[int, Route]:
    """Polylines: out of the source's right side, up (delays) or down (updates) in the gap after its
    column to a lane of its own, along the lane, then down or up in the gap before the target's
    column and into the target's left side. Lanes lie beyond ``top`` and ``bottom``; shorter links
    take the inner lanes, so lanes nest."""
    used: dict[tuple[float, int], int] = {}
    feedback = {}
    for above in (True, False):
        members = [i for i, link in enumerate(drawing.links) if link.feedback and link.delay == above]
        members.sort(key=lambda i: abs(at.boxes[drawing.links[i].source].x - at.boxes[drawing.links[i].target].x))
        for lane, index in enumerate(members):
            link = drawing.links[index]
            a, b = at.boxes[link.source], at.boxes[link.target]
            y = top + 0.25 + LANE_PITCH * lane if above else bottom - 0.25 - LANE_PITCH * lane
            out = _gap_x(at.spans[at.column[link.source]][1], +1, used)
            into = _gap_x(at.spans[at.column[link.target]][0], -1, used)
            feedback[index] = Route((a.bounds()[2], a.y), (b.bounds()[0], b.y),
                                    corners=((out, a.y), (out, y), (into, y), (into, b.y)))
    return feedback


def _gap_x(edge: float, side: int, used: dict[tuple[float, int], int]) -> float:
    """x of the next free vertical track beside a column edge (``side`` +1: right of it, -1: left)."""
    key = (round(edge, 4), side)
    track = used[key] = used.get(key, -1) + 1
    return edge + side * (0.14 + 0.11 * track)


def place_labels(drawing: Drawing, boxes: dict[str, Box], paths: list[Route]) -> list[Point]:
    """Label centers: the first point along each link (from its middle outwards) whose label box
    overlaps no vertex and no label placed before, else the least overlapping one."""
    height = LABEL_SIZE * 1.45 / 72
    taken = [box.bounds() for box in boxes.values()]
    placed: dict[int, Point] = {}
    links = drawing.links
    for index in sorted(range(len(links)), key=lambda i: (links[i].kind != "tensor", links[i].feedback)):
        width = text_width(links[index].label, LABEL_SIZE) + 0.08
        best = None
        for rank, t in enumerate(LABEL_STEPS):
            x, y = paths[index].at(t)
            rect = (x - width / 2, y - height / 2, x + width / 2, y + height / 2)
            cost = sum(_overlap(rect, other) for other in taken) * 100 + rank * 1e-3
            if best is None or cost < best[0]:
                best = (cost, (x, y), rect)
        placed[index] = best[1]
        taken.append(best[2])
    return [placed[i] for i in range(len(links))]


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
