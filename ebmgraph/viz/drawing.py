"""Pictures of a checked graph: a text tree, Mermaid, Graphviz DOT, SVG and PNG.

Every format is written from one ``Drawing`` (vertices and links) made by ``describe_graph``:

- vertices: every node, model and optimizer, each in a group (data, noise, models, model
  evaluations, kernels, banks, losses, optimizers) that sets its color;
- links: every tensor edge (``port: Type shape``), every model use (model -> node, labeled with
  the port), every EMA-style copy (model -> model), and each optimizer's reach (loss ->
  optimizer, optimizer -> model ``updates``). A link is dashed iff it stops the gradient; a bank's
  delay edge is a thick feedback link whose label starts with ``z⁻¹``.

SVG and PNG are drawn with networkx layering and matplotlib (no system program), except that an
SVG is rendered by Graphviz when its ``dot`` program is installed.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from pathlib import Path

import attrs
import networkx as nx

from ebmgraph.engine.check import CheckedGraph, Edge

DELAY_MARK = "z⁻¹"

# group -> (legend title, fill color, stroke color), in legend order
GROUPS: dict[str, tuple[str, str, str]] = {
    "data": ("data", "#cfe2f3", "#3d85c6"),
    "noise": ("noise", "#eeeeee", "#7f7f7f"),
    "models": ("models", "#fce5cd", "#e69138"),
    "evaluations": ("model evaluations", "#fff2cc", "#bf9000"),
    "augmentations": ("augmentations", "#ead1dc", "#a64d79"),
    "kernels": ("kernels", "#d9ead3", "#6aa84f"),
    "amortizers": ("amortized samplers", "#b6d7a8", "#38761d"),
    "batches": ("batch operations", "#f3f3f3", "#434343"),
    "banks": ("banks", "#d9d2e9", "#674ea7"),
    "losses": ("losses", "#f4cccc", "#cc0000"),
    "optimizers": ("optimizers", "#d0e0e3", "#45818e"),
}
OTHER_GROUP = ("other", "#ffffff", "#000000")
NODE_GROUPS = {"data": "data", "noise": "noise", "model": "evaluations", "kernel": "kernels", "bank": "banks",
               "augment": "augmentations", "loss": "losses", "amortizer": "amortizers",
               "batch": "batches"}

# link kind -> (legend title, color)
LINK_KINDS: dict[str, tuple[str, str]] = {
    "tensor": ("tensor edge (port: Type shape)", "#404040"),
    "model": ("model used by a node (port)", "#e69138"),
    "copy": ("model copy (e.g. EMA)", "#e69138"),
    "loss": ("loss minimized by an optimizer", "#cc0000"),
    "updates": ("optimizer updates a model", "#45818e"),
}
DELAY_COLOR = "#c2185b"

MERMAID_RESERVED = {"end", "graph", "subgraph", "flowchart", "direction", "style", "linkstyle", "classdef", "class",
                    "click", "call", "href", "default"}


@attrs.frozen
class Vertex:
    """A node, model or optimizer (``kind``); ``id`` is unique and safe in Mermaid and DOT."""

    id: str
    kind: str
    name: str
    type: str
    group: str

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.type}"


@attrs.frozen
class Link:
    """An arrow between two vertex ids. ``kind``: tensor, model, copy, loss or updates."""

    source: str
    target: str
    label: str
    kind: str
    dashed: bool = False
    delay: bool = False

    @property
    def color(self) -> str:
        return DELAY_COLOR if self.delay else LINK_KINDS[self.kind][1]

    @property
    def feedback(self) -> bool:
        """Drawn against the flow (right to left): bank delays and optimizer updates."""
        return self.delay or self.kind == "updates"


@attrs.frozen
class Drawing:
    title: str
    vertices: tuple[Vertex, ...]
    links: tuple[Link, ...]

    def groups(self) -> list[str]:
        used = {v.group for v in self.vertices}
        return [g for g in GROUPS if g in used] + sorted(used - set(GROUPS))


def group_style(group: str) -> tuple[str, str, str]:
    return GROUPS.get(group, (group, *OTHER_GROUP[1:]))


# --- the one description -------------------------------------------------------------------------

def describe_graph(checked: CheckedGraph) -> Drawing:
    """Vertices and links of a checked graph, shared by every output format."""
    spec = checked.spec
    keys = [("node", n) for n in checked.order] + [("model", m) for m in spec.models] + \
           [("optimizer", o) for o in spec.optimizers]
    ids = _vertex_ids(keys)
    vertices = [Vertex(ids[("node", n)], "node", n, spec.all_nodes()[n].type,
                       NODE_GROUPS.get(checked.node_type(n).family, checked.node_type(n).family))
                for n in checked.order]
    vertices += [Vertex(ids[("model", m)], "model", m, model.type, "models") for m, model in spec.models.items()]
    vertices += [Vertex(ids[("optimizer", o)], "optimizer", o, opt.type, "optimizers")
                 for o, opt in spec.optimizers.items()]
    links = [_tensor_link(checked, edge, ids) for edge in checked.edges]
    links += _model_links(checked, ids) + _copy_links(checked, ids) + _optimizer_links(checked, ids)
    profile = f" (profile {spec.profile})" if spec.profile else ""
    return Drawing(f"{spec.name}{profile}", tuple(vertices), tuple(links))


def _vertex_ids(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The name itself where it is free and not a Mermaid keyword, else ``kind_name``."""
    ids: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for kind, name in keys:
        candidate = name if name not in taken and name.lower() not in MERMAID_RESERVED else f"{kind}_{name}"
        while candidate in taken:
            candidate += "_"
        ids[(kind, name)] = candidate
        taken.add(candidate)
    return ids


def value_text(checked: CheckedGraph, node: str, port: str) -> str:
    """``Type shape`` of an output, e.g. ``Sample (64, 1, 8, 8)``."""
    value = checked.values.get((node, port))
    if value is None:
        return "?"
    return f"{value.type} {tuple(value.shape)}" if value.shape is not None else str(value.type)


def tensor_label(checked: CheckedGraph, edge: Edge) -> str:
    """``port: Type shape`` (``out→port`` when the source has several outputs), ``z⁻¹`` first on a delay."""
    outputs = checked.node_type(edge.source).outputs
    port = edge.target_port if len(outputs) == 1 else f"{edge.source_port}→{edge.target_port}"
    label = f"{port}: {value_text(checked, edge.source, edge.source_port)}"
    return f"{DELAY_MARK} {label}" if edge.delay else label


def _tensor_link(checked: CheckedGraph, edge: Edge, ids) -> Link:
    return Link(ids[("node", edge.source)], ids[("node", edge.target)], tensor_label(checked, edge), "tensor",
                dashed=checked.stops_gradient(edge), delay=edge.delay)


def model_uses(checked: CheckedGraph) -> list[tuple[str, str, str]]:
    """(model, node, port) for every model port bound in the graph, in execution order."""
    nodes = checked.spec.all_nodes()
    uses = []
    for name in checked.order:
        for port in checked.node_type(name).model_inputs():
            model = nodes[name].inputs.get(port.name)
            if model is not None:
                uses.append((model, name, port.name))
    return uses


def _model_links(checked: CheckedGraph, ids) -> list[Link]:
    return [Link(ids[("model", model)], ids[("node", node)], port, "model")
            for model, node, port in model_uses(checked)]


def _copy_links(checked: CheckedGraph, ids) -> list[Link]:
    links = []
    for name, model in checked.spec.models.items():
        source = getattr(model.config, "of", None)
        if source is not None:
            links.append(Link(ids[("model", source)], ids[("model", name)], f"{model.type} copy", "copy"))
    return links


def _optimizer_links(checked: CheckedGraph, ids) -> list[Link]:
    links = []
    for name, opt in checked.spec.optimizers.items():
        links += [Link(ids[("node", loss)], ids[("optimizer", name)], "loss", "loss") for loss in opt.losses]
        links += [Link(ids[("optimizer", name)], ids[("model", model)], "updates", "updates") for model in opt.models]
    return links


# --- entry point -----------------------------------------------------------------------------------

def draw(checked: CheckedGraph, output: str | None, *, engine: str = "auto") -> str:
    """The text tree (``output`` None), or write ``output`` (.mmd, .dot, .svg, .png) and say so.

    ``engine`` for pictures: ``auto`` (Graphviz for .svg when ``dot`` is installed, else
    matplotlib), ``matplotlib`` or ``graphviz``."""
    if output is None:
        return text_tree(checked)
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in (".mmd", ".dot", ".svg", ".png"):
        raise SystemExit(f"ebmgraph draw: cannot write '{output}': use .svg, .png, .mmd (Mermaid) or .dot (Graphviz)")
    drawing = describe_graph(checked)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mmd":
        path.write_text(mermaid(drawing))
        how = "Mermaid flowchart"
    elif suffix == ".dot":
        path.write_text(dot(drawing))
        how = "Graphviz DOT"
    elif _use_graphviz(suffix, engine):
        render_graphviz(drawing, path)
        how = "rendered by Graphviz"
    else:
        render_matplotlib(drawing, path)
        how = "rendered by matplotlib"
    return f"wrote {path} ({how}: {len(drawing.vertices)} vertices, {len(drawing.links)} edges)\n"


def _use_graphviz(suffix: str, engine: str) -> bool:
    if engine not in ("auto", "matplotlib", "graphviz"):
        raise ValueError(f"unknown drawing engine '{engine}'")
    if engine == "graphviz":
        return True
    return engine == "auto" and suffix == ".svg" and shutil.which("dot") is not None


# --- text tree -------------------------------------------------------------------------------------

def text_tree(checked: CheckedGraph) -> str:
    """Nodes in execution order, grouped by family, with their inputs, model bindings and outputs;
    then the models and the optimizers."""
    spec = checked.spec
    profile = f" (profile {spec.profile})" if spec.profile else ""
    lines = [f"{spec.name}{profile}: {_count(len(checked.order), 'node')}, {_count(len(spec.models), 'model')}, "
             f"{_count(len(spec.optimizers), 'optimizer')}"]
    position = {name: i for i, name in enumerate(checked.order, 1)}
    for group, members in _nodes_by_group(checked):
        lines += ["", group_style(group)[0]]
        for name in members:
            lines.append(f"  {position[name]:>2}. {name} ({spec.all_nodes()[name].type})")
            lines += [f"        {line}" for line in _node_lines(checked, name)]
    lines += ["", "models"]
    for name, model in spec.models.items():
        users = [f"{node}.{port}" for m, node, port in model_uses(checked) if m == name]
        copy = f", copy of {model.config.of}" if getattr(model.config, "of", None) else ""
        lines.append(f"  {name} ({model.type}{copy}, {checked.parameter_counts.get(name, 0):,} parameters): "
                     f"used by {', '.join(users) if users else 'no node'}")
    lines += ["", "optimizers"]
    for name, opt in spec.optimizers.items():
        lines.append(f"  {name}: losses [{', '.join(opt.losses)}] -> models [{', '.join(opt.models)}] ({opt.type})")
    return "\n".join(lines) + "\n"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _nodes_by_group(checked: CheckedGraph) -> list[tuple[str, list[str]]]:
    """Groups in order of their first node's execution, each with its nodes in execution order."""
    groups: dict[str, list[str]] = {}
    for name in checked.order:
        family = checked.node_type(name).family
        groups.setdefault(NODE_GROUPS.get(family, family), []).append(name)
    return list(groups.items())


def _node_lines(checked: CheckedGraph, name: str) -> list[str]:
    models = checked.spec.models
    lines = [f"{port} <- model {model} ({models[model].type})" for model, node, port in model_uses(checked)
             if node == name]
    for edge in [e for e in checked.edges if e.target == name]:
        marks = (" (delay)" if edge.delay else "") + (" [stop-gradient]" if checked.stops_gradient(edge) else "")
        lines.append(f"{edge.target_port} <- {edge.source}.{edge.source_port} "
                     f"({value_text(checked, edge.source, edge.source_port)}){marks}")
    for port in checked.node_type(name).outputs:
        lines.append(f"-> {port.name}: {value_text(checked, name, port.name)}")
    return lines


# --- Mermaid ---------------------------------------------------------------------------------------

def mermaid_text(text: str) -> str:
    """A label for a double-quoted Mermaid string: entity codes for '#' and '"', <br/> for newlines."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("\n", "<br/>")


def mermaid(drawing: Drawing) -> str:
    """A left-to-right Mermaid flowchart: one classDef per group, dashed (-.->) stop-gradient links,
    thick (==>) delay links, link colors by kind."""
    lines = ["flowchart LR", f"    %% {drawing.title}: ebmgraph draw"]
    lines += [f'    {v.id}["{mermaid_text(v.label)}"]:::{v.group}' for v in drawing.vertices]
    lines += [f'    {link.source} {_mermaid_arrow(link)}|"{mermaid_text(link.label)}"| {link.target}'
              for link in drawing.links]
    lines += _mermaid_link_styles(drawing.links)
    for group in drawing.groups():
        _, fill, stroke = group_style(group)
        lines.append(f"    classDef {group} fill:{fill},stroke:{stroke},color:#000000")
    return "\n".join(lines) + "\n"


def _mermaid_arrow(link: Link) -> str:
    if link.dashed:
        return "-.->"
    return "==>" if link.delay else "-->"


def _mermaid_link_styles(links: tuple[Link, ...]) -> list[str]:
    """One ``linkStyle`` line per color (Mermaid numbers links in order of definition)."""
    by_style: dict[str, list[str]] = {}
    for index, link in enumerate(links):
        width = "3px" if link.delay else "1.5px"
        by_style.setdefault(f"stroke:{link.color},stroke-width:{width},color:{link.color}", []).append(str(index))
    return [f"    linkStyle {','.join(indices)} {style}" for style, indices in by_style.items()]


# --- Graphviz DOT ----------------------------------------------------------------------------------

def dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(drawing: Drawing) -> str:
    """Graphviz DOT, left to right: fill color per group (``class`` names the group), dashed
    stop-gradient edges, bold ``z⁻¹`` delay edges and optimizer updates that do not constrain ranks."""
    lines = [f'digraph "{dot_text(drawing.title)}" {{',
             f'    graph [rankdir=LR, label="{dot_text(drawing.title)}", labelloc=t, fontname="Helvetica", '
             'nodesep=0.35, ranksep=0.8];',
             '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '    edge [fontname="Helvetica", fontsize=9];']
    for v in drawing.vertices:
        _, fill, stroke = group_style(v.group)
        lines.append(f'    "{v.id}" [label="{dot_text(v.label)}", fillcolor="{fill}", color="{stroke}", '
                     f'class="{v.group}"];')
    lines += [f'    "{link.source}" -> "{link.target}" [{_dot_edge_attributes(link)}];' for link in drawing.links]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_edge_attributes(link: Link) -> str:
    styles = (["dashed"] if link.dashed else []) + (["bold"] if link.delay else [])
    attributes = [f'label="{dot_text(link.label)}"', f'color="{link.color}"', f'fontcolor="{link.color}"',
                  f'class="{link.kind}{" delay" if link.delay else ""}"']
    if styles:
        attributes.append(f'style="{",".join(styles)}"')
    if link.delay:
        attributes.append("penwidth=2.5")
    if link.feedback:
        attributes.append("constraint=false")
    return ", ".join(attributes)


def render_graphviz(drawing: Drawing, path: Path) -> None:
    """Render with the ``dot`` program (format from the suffix)."""
    program = shutil.which("dot")
    if program is None:
        raise SystemExit("ebmgraph draw: Graphviz's 'dot' program is not installed")
    subprocess.run([program, f"-T{path.suffix.lstrip('.').lower()}", "-o", str(path)], input=dot(drawing),
                   text=True, check=True, capture_output=True)


# --- matplotlib ------------------------------------------------------------------------------------
# Coordinates are inches: the figure is exactly as large as the layout, so text never scales.

NAME_SIZE, TYPE_SIZE, LABEL_SIZE, TITLE_SIZE, LEGEND_SIZE = 9.5, 8.0, 7.0, 12.0, 8.0
BOX_HEIGHT, ROW_PITCH, MIN_GAP, MARGIN, LANE_PITCH = 0.52, 0.95, 1.1, 0.35, 0.3
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
        fig.savefig(path, dpi=120, metadata=metadata, facecolor="white")


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
