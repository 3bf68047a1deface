"""What a picture of a plan graph shows: one ``Drawing`` (vertices and links) made by
``describe_graph``, shared by every output format.

- vertices: every node, model and optimizer, each in a group (data, noise, models, model
  evaluations, kernels, banks, losses, optimizers) that sets its color;
- links: every tensor edge (``port: Type shape``), every model use (model -> node, labeled with
  the port), every EMA-style copy (model -> model), and each optimizer's reach (loss ->
  optimizer, optimizer -> model ``updates``). A link is dashed iff it stops the gradient; a bank's
  delay edge is a thick feedback link whose label starts with ``z⁻¹``.
"""

from __future__ import annotations

import attrs

from ebmgraph.engine.plan import Edge, StepPlan

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

def describe_graph(plan: StepPlan) -> Drawing:
    """Vertices and links of a plan graph, shared by every output format."""
    spec = plan.spec
    keys = [("node", n) for n in plan.order] + [("model", m) for m in spec.models] + \
           [("optimizer", o) for o in spec.optimizers]
    ids = _vertex_ids(keys)
    vertices = [Vertex(ids[("node", n)], "node", n, spec.all_nodes()[n].type,
                       NODE_GROUPS.get(plan.node_type(n).family, plan.node_type(n).family))
                for n in plan.order]
    vertices += [Vertex(ids[("model", m)], "model", m, model.type, "models") for m, model in spec.models.items()]
    vertices += [Vertex(ids[("optimizer", o)], "optimizer", o, opt.type, "optimizers")
                 for o, opt in spec.optimizers.items()]
    links = [_tensor_link(plan, edge, ids) for edge in plan.edges]
    links += _model_links(plan, ids) + _copy_links(plan, ids) + _optimizer_links(plan, ids)
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


def value_text(plan: StepPlan, node: str, port: str) -> str:
    """``Type shape`` of an output, e.g. ``Sample (64, 1, 8, 8)``."""
    value = plan.values.get((node, port))
    if value is None:
        return "?"
    return f"{value.type} {tuple(value.shape)}" if value.shape is not None else str(value.type)


def tensor_label(plan: StepPlan, edge: Edge) -> str:
    """``port: Type shape`` (``out→port`` when the source has several outputs), ``z⁻¹`` first on a delay."""
    outputs = plan.node_type(edge.source).outputs
    port = edge.target_port if len(outputs) == 1 else f"{edge.source_port}→{edge.target_port}"
    label = f"{port}: {value_text(plan, edge.source, edge.source_port)}"
    return f"{DELAY_MARK} {label}" if edge.delay else label


def _tensor_link(plan: StepPlan, edge: Edge, ids) -> Link:
    return Link(ids[("node", edge.source)], ids[("node", edge.target)], tensor_label(plan, edge), "tensor",
                dashed=plan.stops_gradient(edge), delay=edge.delay)


def model_uses(plan: StepPlan) -> list[tuple[str, str, str]]:
    """(model, node, port) for every model port bound in the graph, in execution order."""
    nodes = plan.spec.all_nodes()
    uses = []
    for name in plan.order:
        for port in plan.node_type(name).model_inputs():
            model = nodes[name].inputs.get(port.name)
            if model is not None:
                uses.append((model, name, port.name))
    return uses


def _model_links(plan: StepPlan, ids) -> list[Link]:
    return [Link(ids[("model", model)], ids[("node", node)], port, "model")
            for model, node, port in model_uses(plan)]


def _copy_links(plan: StepPlan, ids) -> list[Link]:
    links = []
    for name, model in plan.spec.models.items():
        source = getattr(model.config, "of", None)
        if source is not None:
            links.append(Link(ids[("model", source)], ids[("model", name)], f"{model.type} copy", "copy"))
    return links


def _optimizer_links(plan: StepPlan, ids) -> list[Link]:
    links = []
    for name, opt in plan.spec.optimizers.items():
        links += [Link(ids[("node", loss)], ids[("optimizer", name)], "loss", "loss") for loss in opt.losses]
        links += [Link(ids[("optimizer", name)], ids[("model", model)], "updates", "updates") for model in opt.models]
    return links
