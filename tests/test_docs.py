"""The documentation stays in step with the code: the generated node reference and the
graph-file reference's coverage of every section and key."""

from pathlib import Path

import attrs
import pytest

from ebmgraph.nodes.reference import markdown_reference
from ebmgraph.spec.schema import SECTIONS, EvalSpec, PhaseSpec, ScheduleSpec, TrainSpec

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_node_reference_is_up_to_date():
    assert (DOCS / "nodes.md").read_text() == markdown_reference(builtin_only=True), (
        "docs/nodes.md is out of date; regenerate it with: ebmgraph nodes --markdown > docs/nodes.md")


def _keys() -> list[str]:
    keys = [f"section {name}" for name in SECTIONS]
    for cls in (TrainSpec, EvalSpec, ScheduleSpec, PhaseSpec):
        keys += [f"{cls.__name__} {field.name}" for field in attrs.fields(cls)]
    return keys


@pytest.mark.parametrize("key", _keys())
def test_graph_file_reference_names_every_key(key):
    name = key.split()[1]
    assert f"`{name}`" in (DOCS / "graph-files.md").read_text(), (
        f"docs/graph-files.md does not document {key} (expected `{name}` in backticks)")
