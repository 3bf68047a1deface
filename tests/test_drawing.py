"""``ebmgraph draw``: the Mermaid and DOT texts hold every node, model, optimizer and edge of the
compiled graph (parsed back and compared with edges built here from the checked graph), dashed
edges are exactly the stop-gradient edges, delay edges carry z⁻¹, pictures are written, and the
pictures in docs/visualizing.md are current."""

from __future__ import annotations

import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from ebmgraph.cli import main
from ebmgraph.engine.check import check_graph
from ebmgraph.nodes.catalog import NODES
from ebmgraph.engine.load import load_graph
from ebmgraph.viz.drawing import DELAY_MARK, describe_graph, dot, draw, mermaid, text_tree

ROOT = Path(__file__).resolve().parent.parent
GRAPH_FILES = sorted((ROOT / "graphs").glob("*.yaml"))
DOC = ROOT / "docs" / "visualizing.md"
IMAGES = ROOT / "docs" / "images" / "graphs"
REGENERATE = "regenerate with: python scripts/draw_graphs.py"


def _cases() -> list[tuple[str, str | None]]:
    cases = []
    for path in GRAPH_FILES:
        profiles = yaml.safe_load(path.read_text()).get("profiles") or {}
        cases += [(path.stem, profile) for profile in profiles] or [(path.stem, None)]
    return cases


CASES = _cases()
IDS = [f"{name}-{profile}" for name, profile in CASES]


# --- the graphs, checked once (profiles on CIFAR-10 read a small fake copy) -----------------------

def _write_fake_cifar(root: Path, per_batch: int = 32) -> None:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, per_batch))}
        with (root / name).open("wb") as file:
            pickle.dump(batch, file)


@pytest.fixture(scope="module")
def checked_graphs(tmp_path_factory):
    cifar = tmp_path_factory.mktemp("data") / "cifar-10-batches-py"
    _write_fake_cifar(cifar)
    cache = {}

    def get(name: str, profile: str | None):
        if (name, profile) not in cache:
            path = str(ROOT / "graphs" / f"{name}.yaml")
            spec = load_graph(path, profile, ())
            if spec.data.type == "cifar10":
                spec = load_graph(path, profile, (f"data.root={cifar}",))
            cache[(name, profile)] = check_graph(spec)
        return cache[(name, profile)]
    return get


# --- what the drawing must show, built from the checked graph -------------------------------------

def value_text(checked, node: str, port: str) -> str:
    value = checked.values[(node, port)]
    return f"{value.type} {tuple(value.shape)}"


def expected_vertices(checked) -> set[tuple[str, str]]:
    spec = checked.spec
    return ({("node", n) for n in spec.all_nodes()} | {("model", m) for m in spec.models}
            | {("optimizer", o) for o in spec.optimizers})


def tensor_key(checked, edge) -> tuple:
    return (("node", edge.source), ("node", edge.target), edge.target_port,
            value_text(checked, edge.source, edge.source_port))


def expected_edges(checked) -> Counter:
    """(source, target, port, value) for tensor edges; (source, target, what) for the others."""
    spec = checked.spec
    edges = Counter(tensor_key(checked, e) for e in checked.edges)
    for name, node in spec.all_nodes().items():
        for port in NODES.get(node.type).model_inputs():
            if port.name in node.inputs:
                edges[(("model", node.inputs[port.name]), ("node", name), port.name)] += 1
    for name, model in spec.models.items():
        if getattr(model.config, "of", None) is not None:
            edges[(("model", model.config.of), ("model", name), "copy")] += 1
    for name, opt in spec.optimizers.items():
        edges.update((("node", loss), ("optimizer", name), "loss") for loss in opt.losses)
        edges.update((("optimizer", name), ("model", model), "updates") for model in opt.models)
    return edges


def expected_dashed(checked) -> Counter:
    return Counter(tensor_key(checked, e) for e in checked.edges if checked.stops_gradient(e))


def expected_delays(checked) -> Counter:
    return Counter(tensor_key(checked, e) for e in checked.edges if e.delay)


# --- parsing the texts back -------------------------------------------------------------------------

KIND_OF_GROUP = {"models": "model", "optimizers": "optimizer"}


def edge_key(source: tuple, target: tuple, label: str) -> tuple:
    """The expected_edges key of a drawn edge, from its endpoints and label."""
    if source[0] == "node" and target[0] == "node":
        port, value = label.removeprefix(DELAY_MARK).strip().split(": ", 1)
        return source, target, port.split("→")[-1], value
    if source[0] == "model" and target[0] == "model":
        assert label.endswith(" copy"), label
        return source, target, "copy"
    if target[0] == "optimizer":
        assert label == "loss", label
        return source, target, "loss"
    if source[0] == "optimizer":
        assert label == "updates", label
        return source, target, "updates"
    return source, target, label


class Parsed:
    """Vertices as (kind, name) and edges as expected_edges keys, with their drawn style."""

    def __init__(self):
        self.vertices: dict[str, tuple[str, str]] = {}  # id -> (kind, name)
        self.groups: dict[tuple[str, str], str] = {}
        self.edges: list[dict] = []

    def add_vertex(self, vertex_id: str, label: str, group: str) -> None:
        name, node_type = label.split("\n")
        key = (KIND_OF_GROUP.get(group, "node"), name)
        self.vertices[vertex_id] = key
        self.groups[key] = group

    def add_edge(self, source: str, target: str, label: str, **style) -> None:
        key = edge_key(self.vertices[source], self.vertices[target], label)
        self.edges.append({"key": key, "label": label, **style})

    def keys(self, **where) -> Counter:
        return Counter(e["key"] for e in self.edges if all(e[k] == v for k, v in where.items()))


MERMAID_VERTEX = re.compile(r'^\s*(\w+)\["(.*)"\]:::(\w+)$')
MERMAID_EDGE = re.compile(r'^\s*(\w+) (-->|-\.->|==>)\|"(.*)"\| (\w+)$')
MERMAID_LINK_STYLE = re.compile(r"^\s*linkStyle ([\d,]+) (.*)$")


def mermaid_unescape(text: str) -> str:
    return text.replace("<br/>", "\n").replace("#quot;", '"').replace("#35;", "#")


def parse_mermaid(text: str) -> Parsed:
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    parsed, widths = Parsed(), {}
    for line in lines:
        if match := MERMAID_LINK_STYLE.match(line):
            width = re.search(r"stroke-width:([\d.]+)px", match[2])[1]
            widths.update({int(i): float(width) for i in match[1].split(",")})
    for line in lines[1:]:
        if match := MERMAID_VERTEX.match(line):
            parsed.add_vertex(match[1], mermaid_unescape(match[2]), match[3])
        elif match := MERMAID_EDGE.match(line):
            index = len(parsed.edges)
            parsed.add_edge(match[1], match[4], mermaid_unescape(match[3]), dashed=match[2] == "-.->",
                            thick=match[2] == "==>" or widths.get(index, 0) >= 3)
        else:
            assert re.match(r"^\s*(%%|linkStyle |classDef )", line), f"unexpected Mermaid line: {line!r}"
    return parsed


DOT_VERTEX = re.compile(r'^\s*"([^"]+)" \[(.*)\];$')
DOT_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$')
DOT_ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')


def dot_attributes(text: str) -> dict[str, str]:
    def value(raw: str) -> str:
        if raw.startswith('"'):
            raw = raw[1:-1]
        return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw)
    return {key: value(raw) for key, raw in DOT_ATTRIBUTE.findall(text)}


def parse_dot(text: str) -> Parsed:
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[-1] == "}"
    parsed = Parsed()
    for line in lines[1:-1]:
        if match := DOT_EDGE.match(line):
            attributes = dot_attributes(match[3])
            styles = attributes.get("style", "").split(",")
            parsed.add_edge(match[1], match[2], attributes["label"], dashed="dashed" in styles,
                            thick="bold" in styles, constraint=attributes.get("constraint", "true"))
        elif match := DOT_VERTEX.match(line):
            attributes = dot_attributes(match[2])
            parsed.add_vertex(match[1], attributes["label"], attributes["class"])
        else:
            assert re.match(r"^\s*(graph|node|edge) \[", line), f"unexpected DOT line: {line!r}"
    return parsed


PARSERS = {"mermaid": lambda d: parse_mermaid(mermaid(d)), "dot": lambda d: parse_dot(dot(d))}


# --- the texts against the graph --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", PARSERS)
@pytest.mark.parametrize("name, profile", CASES, ids=IDS)
def test_text_formats_hold_every_vertex_and_edge(checked_graphs, name, profile, fmt):
    checked = checked_graphs(name, profile)
    parsed = PARSERS[fmt](describe_graph(checked))
    assert len(parsed.vertices) == len(set(parsed.vertices.values()))
    assert set(parsed.vertices.values()) == expected_vertices(checked)
    assert parsed.keys() == expected_edges(checked)
    assert parsed.keys(dashed=True) == expected_dashed(checked), "dashed edges must be the stop-gradient edges"
    delays = Counter(e["key"] for e in parsed.edges if e["label"].startswith(DELAY_MARK))
    assert delays == expected_delays(checked), f"delay edges must be marked {DELAY_MARK}"
    assert parsed.keys(thick=True) == expected_delays(checked), "delay edges must be thick (bold)"
    if fmt == "dot":
        loose = Counter(e["key"] for e in parsed.edges if e["constraint"] == "false")
        assert loose == expected_delays(checked) + Counter(k for k in expected_edges(checked) if k[-1] == "updates")


@pytest.mark.parametrize("name, profile", CASES, ids=IDS)
def test_families_are_grouped(checked_graphs, name, profile):
    checked = checked_graphs(name, profile)
    parsed = parse_mermaid(mermaid(describe_graph(checked)))
    expected = {"data": "data", "noise": "noise", "kernel": "kernels", "bank": "banks", "model": "evaluations",
                "augment": "augmentations", "loss": "losses", "amortizer": "amortizers", "batch": "batches"}
    for node in checked.order:
        assert parsed.groups[("node", node)] == expected[checked.node_type(node).family]
    assert all(parsed.groups[("model", m)] == "models" for m in checked.spec.models)
    assert all(parsed.groups[("optimizer", o)] == "optimizers" for o in checked.spec.optimizers)
    used = set(parsed.groups.values())
    assert {line.split()[1] for line in mermaid(describe_graph(checked)).splitlines()
            if line.strip().startswith("classDef")} == used


def test_the_parsers_see_a_missing_edge(checked_graphs):
    """A drawing that loses an edge or a dash fails the comparison."""
    checked = checked_graphs("igebm", "default")
    text = mermaid(describe_graph(checked))
    dropped = "\n".join(line for line in text.splitlines() if "init: Sample" not in line)
    assert parse_mermaid(dropped).keys() != expected_edges(checked)
    undashed = text.replace("-.->", "-->")
    assert parse_mermaid(undashed).keys(dashed=True) != expected_dashed(checked)


@pytest.mark.parametrize("name, profile", CASES, ids=IDS)
def test_text_tree_names_every_node(checked_graphs, name, profile):
    checked = checked_graphs(name, profile)
    tree = text_tree(checked)
    for vertex in [*checked.spec.all_nodes(), *checked.spec.models, *checked.spec.optimizers]:
        assert re.search(rf"\b{vertex}\b", tree), vertex
    for edge in checked.edges:
        wired = f"{edge.target_port} <- {edge.source}.{edge.source_port} ("
        line = next(line for line in tree.splitlines() if wired in line)
        assert ("(delay)" in line) == edge.delay
        assert ("[stop-gradient]" in line) == checked.stops_gradient(edge)
    for name_, opt in checked.spec.optimizers.items():
        assert f"{name_}: losses [{', '.join(opt.losses)}] -> models [{', '.join(opt.models)}]" in tree


# --- files --------------------------------------------------------------------------------------------

def test_pictures_are_written(checked_graphs, tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # matplotlib, even where Graphviz is installed
    checked = checked_graphs("igebm", "default")
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml")):
        path = tmp_path / f"sub/igebm{suffix}"
        message = draw(checked, str(path))
        assert str(path) in message and "matplotlib" in message
        assert path.read_bytes().startswith(magic) and path.stat().st_size > 10_000
    first = (tmp_path / "sub/igebm.svg").read_bytes()
    draw(checked, str(tmp_path / "again.svg"))
    assert (tmp_path / "again.svg").read_bytes() == first, "the SVG must be deterministic"
    assert b"<dc:date>" not in first
    for suffix, text in ((".mmd", mermaid), (".dot", dot)):
        draw(checked, str(tmp_path / f"igebm{suffix}"))
        assert (tmp_path / f"igebm{suffix}").read_text() == text(describe_graph(checked))


def test_larger_graph_renders(checked_graphs, tmp_path):
    draw(checked_graphs("dual_mcmc", "default"), str(tmp_path / "dual.png"), engine="matplotlib")
    assert (tmp_path / "dual.png").stat().st_size > 10_000


def test_svg_goes_through_graphviz_when_installed(checked_graphs, tmp_path, monkeypatch):
    """A stand-in ``dot`` on PATH that copies its input to the -o file receives the DOT text."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\ncat > "$2"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    checked = checked_graphs("short_run", "default")
    message = draw(checked, str(tmp_path / "g.svg"))
    assert "Graphviz" in message
    assert (tmp_path / "g.svg").read_text() == dot(describe_graph(checked))
    draw(checked, str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


def test_command_line(tmp_path, capsys):
    assert main(["draw", str(ROOT / "graphs/short_run.yaml")]) == 0
    assert "negatives (langevin)" in capsys.readouterr().out
    assert main(["draw", str(ROOT / "graphs/short_run.yaml"), "-o", str(tmp_path / "g.mmd")]) == 0
    assert str(tmp_path / "g.mmd") in capsys.readouterr().out
    with pytest.raises(SystemExit, match="use .svg, .png"):
        main(["draw", str(ROOT / "graphs/short_run.yaml"), "-o", str(tmp_path / "g.pdf")])


# --- the documentation --------------------------------------------------------------------------------

def doc_mermaid_blocks() -> dict[str, str]:
    """Mermaid blocks of docs/visualizing.md by graph name (from their '%% NAME (profile ...)' line)."""
    blocks = re.findall(r"```mermaid\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return {re.search(r"^\s*%% (\w+)", block, flags=re.M)[1]: block for block in blocks}


def comparable(parsed: Parsed) -> tuple:
    edges = Counter((e["key"], e["label"], e["dashed"], e["thick"]) for e in parsed.edges)
    return set(parsed.vertices.values()), parsed.groups, edges


@pytest.mark.parametrize("path", GRAPH_FILES, ids=[p.stem for p in GRAPH_FILES])
def test_documented_pictures_are_current(checked_graphs, path):
    checked = checked_graphs(path.stem, None)
    current = comparable(parse_mermaid(mermaid(describe_graph(checked))))
    blocks = doc_mermaid_blocks()
    assert checked.spec.name in blocks, f"docs/visualizing.md has no Mermaid block for {path.stem}; {REGENERATE}"
    assert comparable(parse_mermaid(blocks[checked.spec.name])) == current, (
        f"the {path.stem} picture in docs/visualizing.md is out of date; {REGENERATE}")
    mmd = IMAGES / f"{path.stem}.mmd"
    assert mmd.exists() and comparable(parse_mermaid(mmd.read_text(encoding="utf-8"))) == current, (
        f"{mmd.relative_to(ROOT)} is out of date; {REGENERATE}")
    svg = IMAGES / f"{path.stem}.svg"
    assert svg.exists() and svg.stat().st_size > 10_000, f"{svg.relative_to(ROOT)} is missing; {REGENERATE}"
    assert f"(images/graphs/{path.stem}.svg)" in DOC.read_text(encoding="utf-8")


def test_documented_text_tree_is_current(checked_graphs):
    tree = text_tree(checked_graphs("igebm", None))
    assert f"$ ebmgraph draw graphs/igebm.yaml\n{tree}```" in DOC.read_text(encoding="utf-8"), (
        f"the text tree example in docs/visualizing.md is out of date; {REGENERATE}")
