"""Load graph files against every registered node, model and optimizer type, the graph's
plugins (and any given on the command line) imported first."""

from __future__ import annotations

from pathlib import Path

from ebmgraph.engine.plugins import PluginError, import_plugin
from ebmgraph.errors import GraphError
from ebmgraph.nodes.catalog import MODELS, NODES, OPTIMIZERS
from ebmgraph.spec.load import Catalog, plugin_entries, prepare, structure_graph
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.spec.source import Source, load_file, load_source

CATALOG = Catalog(NODES, MODELS, OPTIMIZERS)


def _resolve(src: Source, profile: str | None, overrides: tuple[str, ...], plugins: tuple[str, ...]) -> GraphSpec:
    applied = prepare(src, profile, overrides)
    declared = plugin_entries(src)
    extra = [str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins]
    entries = declared + [p for p in extra if p not in declared]
    errors = []
    for index, entry in enumerate(entries):
        try:
            import_plugin(entry)
        except PluginError as error:
            path = ("plugins", index) if index < len(declared) else ("plugins",)
            errors.append(src.diagnostic(path, str(error) if index < len(declared) else f"--plugin: {error}"))
    if errors:
        raise GraphError(errors)
    if entries:
        src.data["plugins"] = entries  # the resolved graph records every plugin it needs
    return structure_graph(src, CATALOG, applied)


def load_graph(path: str | Path, profile: str | None = None, overrides: tuple[str, ...] = (),
               plugins: tuple[str, ...] = ()) -> GraphSpec:
    """Read, override and structure a graph file, importing its ``plugins`` and ``plugins`` (module
    names or ``.py`` paths) first; raises GraphError listing every problem."""
    return _resolve(load_file(path), profile, overrides, tuple(plugins))


def loads_graph(text: str, file: str = "<string>", profile: str | None = None,
                overrides: tuple[str, ...] = (), plugins: tuple[str, ...] = ()) -> GraphSpec:
    """The same for graph text (``file`` names it in error messages)."""
    return _resolve(load_source(text, file), profile, overrides, tuple(plugins))


def resolve_source(src: Source) -> GraphSpec:
    """The same for a Source in memory whose profile is already applied (its ``profiles`` removed):
    ``ebmgraph.api`` re-resolves a graph changed in Python with it."""
    return _resolve(src, None, (), ())
