"""Load graph files against every registered node, model and optimizer type."""

from __future__ import annotations

from pathlib import Path

from ebmgraph.nodes.catalog import MODELS, NODES, OPTIMIZERS
from ebmgraph.spec.load import Catalog, resolve
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.spec.source import load_file, load_source

CATALOG = Catalog(NODES, MODELS, OPTIMIZERS)


def load_graph(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = ()) -> GraphSpec:
    """Read, override and structure a graph file; raises GraphError listing every problem."""
    return resolve(load_file(path), CATALOG, profile, overrides)


def loads_graph(text: str, file: str = "<string>", profile: str | None = None,
                overrides: tuple[str, ...] = ()) -> GraphSpec:
    """The same for graph text (``file`` names it in error messages)."""
    return resolve(load_source(text, file), CATALOG, profile, overrides)
