"""Pictures of a plan graph: a text tree, Mermaid, Graphviz DOT, SVG and PNG, all but the text
tree written from one ``Drawing`` (see ``ebmgraph.viz.description``).

SVG and PNG are drawn with networkx layering and matplotlib (``ebmgraph.viz.render``, no system
program), except that an SVG is rendered by Graphviz when its ``dot`` program is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ebmgraph.engine.plan import StepPlan
from ebmgraph.viz.description import (
    DELAY_MARK, NODE_GROUPS, Drawing, Link, describe_graph, group_style, model_uses, value_text)
from ebmgraph.viz.render import render_matplotlib

__all__ = ["DELAY_MARK", "describe_graph", "dot", "draw", "mermaid", "render_graphviz", "text_tree"]


# --- entry point -----------------------------------------------------------------------------------

def draw(plan: StepPlan, output: str | None, *, engine: str = "auto") -> str:
    """The text tree (``output`` None), or write ``output`` (.mmd, .dot, .svg, .png) and say so.

    ``engine`` for pictures: ``auto`` (Graphviz for .svg when ``dot`` is installed, else
    matplotlib), ``matplotlib`` or ``graphviz``."""
    if output is None:
        return text_tree(plan)
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in (".mmd", ".dot", ".svg", ".png"):
        raise SystemExit(f"ebmgraph draw: cannot write '{output}': use .svg, .png, .mmd (Mermaid) or .dot (Graphviz)")
    drawing = describe_graph(plan)
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

def text_tree(plan: StepPlan) -> str:
    """Nodes in execution order, grouped by family, with their inputs, model bindings and outputs;
    then the models and the optimizers."""
    spec = plan.spec
    profile = f" (profile {spec.profile})" if spec.profile else ""
    lines = [f"{spec.name}{profile}: {_count(len(plan.order), 'node')}, {_count(len(spec.models), 'model')}, "
             f"{_count(len(spec.optimizers), 'optimizer')}"]
    position = {name: i for i, name in enumerate(plan.order, 1)}
    for group, members in _nodes_by_group(plan):
        lines += ["", group_style(group)[0]]
        for name in members:
            lines.append(f"  {position[name]:>2}. {name} ({spec.all_nodes()[name].type})")
            lines += [f"        {line}" for line in _node_lines(plan, name)]
    lines += ["", "models"]
    for name, model in spec.models.items():
        users = [f"{node}.{port}" for m, node, port in model_uses(plan) if m == name]
        copy = f", copy of {model.config.of}" if getattr(model.config, "of", None) else ""
        lines.append(f"  {name} ({model.type}{copy}, {plan.parameter_counts.get(name, 0):,} parameters): "
                     f"used by {', '.join(users) if users else 'no node'}")
    lines += ["", "optimizers"]
    for name, opt in spec.optimizers.items():
        lines.append(f"  {name}: losses [{', '.join(opt.losses)}] -> models [{', '.join(opt.models)}] ({opt.type})")
    return "\n".join(lines) + "\n"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _nodes_by_group(plan: StepPlan) -> list[tuple[str, list[str]]]:
    """Groups in order of their first node's execution, each with its nodes in execution order."""
    groups: dict[str, list[str]] = {}
    for name in plan.order:
        family = plan.node_type(name).family
        groups.setdefault(NODE_GROUPS.get(family, family), []).append(name)
    return list(groups.items())


def _node_lines(plan: StepPlan, name: str) -> list[str]:
    models = plan.spec.models
    lines = [f"{port} <- model {model} ({models[model].type})" for model, node, port in model_uses(plan)
             if node == name]
    for edge in [e for e in plan.edges if e.target == name]:
        marks = (" (delay)" if edge.delay else "") + (" [stop-gradient]" if plan.stops_gradient(edge) else "")
        lines.append(f"{edge.target_port} <- {edge.source}.{edge.source_port} "
                     f"({value_text(plan, edge.source, edge.source_port)}){marks}")
    for port in plan.node_type(name).outputs:
        lines.append(f"-> {port.name}: {value_text(plan, name, port.name)}")
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
