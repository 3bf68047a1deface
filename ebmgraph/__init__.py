"""ebmgraph: energy-based model training algorithms as declarative dataflow graphs.

``ebmgraph.load(path)`` reads a graph file as a ``Graph`` to read, change, check, draw and run;
``ebmgraph.Graph.new(...)`` builds one in Python; ``ebmgraph.open_run(run_dir)`` opens a run.
They are imported on first use, so that ``import ebmgraph`` stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ebmgraph.version import __version__

if TYPE_CHECKING:
    from ebmgraph.api import Graph, Run, load, open_run

__all__ = ["Graph", "Run", "__version__", "load", "open_run"]


def __getattr__(name: str):
    if name in __all__:
        from ebmgraph import api

        return getattr(api, name)
    raise AttributeError(f"module 'ebmgraph' has no attribute '{name}'")
