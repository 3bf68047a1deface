"""Regenerate the graph pictures of the documentation.

For every graphs/*.yaml (default profile): docs/images/graphs/<graph>.svg (matplotlib renderer,
deterministic) and docs/images/graphs/<graph>.mmd (Mermaid); then the generated parts of
docs/visualizing.md: the ``ebmgraph draw`` text-tree example and one section per graph with its
picture and its Mermaid text.

    python scripts/draw_graphs.py           # rewrite the files
    python scripts/draw_graphs.py --check   # write nothing; exit 1 if the .mmd files or the doc are stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ebmgraph.engine.check import check_graph
from ebmgraph.engine.load import load_graph
from ebmgraph.viz.drawing import describe_graph, draw, mermaid, text_tree

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "graphs"
DOC = ROOT / "docs" / "visualizing.md"
IMAGES = ROOT / "docs" / "images" / "graphs"
TREE_EXAMPLE = "igebm"  # the graph whose text tree the doc shows
GRAPHS_MARKERS = ("<!-- BEGIN GENERATED GRAPHS (python scripts/draw_graphs.py) -->", "<!-- END GENERATED GRAPHS -->")
TREE_MARKERS = ("<!-- BEGIN GENERATED TEXT TREE (python scripts/draw_graphs.py) -->",
                "<!-- END GENERATED TEXT TREE -->")


def graph_files() -> list[Path]:
    return sorted(GRAPHS.glob("*.yaml"))


def checked_graph(path: Path):
    """The graph file checked with its default profile."""
    return check_graph(load_graph(str(path), None, ()))


def graph_section(name: str, checked) -> str:
    """One doc section for graphs/NAME.yaml: heading, citation, the SVG and the Mermaid text."""
    spec = checked.spec
    lines = [f"### `{name}`", ""]
    if spec.paper:
        lines += [f"{spec.paper.strip()} (`graphs/{name}.yaml`, default profile)", ""]
    lines += [f"![dataflow of {name}](images/graphs/{name}.svg)", "",
              f"Mermaid source ([images/graphs/{name}.mmd](images/graphs/{name}.mmd)):", "",
              "```mermaid", mermaid(describe_graph(checked)).rstrip("\n"), "```"]
    return "\n".join(lines)


def tree_example(name: str, checked) -> str:
    return "\n".join(["```", f"$ ebmgraph draw graphs/{name}.yaml", text_tree(checked).rstrip("\n"), "```"])


def replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    begin, end = markers
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"{DOC}: expected one '{begin}' followed by one '{end}'")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def regenerated_doc(checked_graphs: dict[str, object]) -> str:
    text = DOC.read_text(encoding="utf-8")
    text = replace_between(text, TREE_MARKERS, tree_example(TREE_EXAMPLE, checked_graphs[TREE_EXAMPLE]))
    sections = "\n\n".join(graph_section(name, checked) for name, checked in checked_graphs.items())
    return replace_between(text, GRAPHS_MARKERS, sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    checked_graphs = {path.stem: checked_graph(path) for path in graph_files()}
    stale = []
    for name, checked in checked_graphs.items():
        mmd = IMAGES / f"{name}.mmd"
        if args.check:
            if not mmd.exists() or mmd.read_text(encoding="utf-8") != mermaid(describe_graph(checked)):
                stale.append(str(mmd))
            if not (IMAGES / f"{name}.svg").exists():
                stale.append(str(IMAGES / f"{name}.svg"))
            continue
        for suffix in (".mmd", ".svg"):
            print(draw(checked, str(IMAGES / f"{name}{suffix}"), engine="matplotlib"), end="")
    doc = regenerated_doc(checked_graphs)
    if args.check:
        if DOC.read_text(encoding="utf-8") != doc:
            stale.append(str(DOC))
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if stale else 0
    DOC.write_text(doc, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
