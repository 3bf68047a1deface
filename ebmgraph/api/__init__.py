"""The public Python API: a graph file as a Python object that can be read, changed, built from
scratch, checked, compiled, drawn and run, and run directories opened from Python."""

from ebmgraph.api.graph import Graph, load
from ebmgraph.api.run import Run, open_run

__all__ = ["Graph", "Run", "load", "open_run"]
