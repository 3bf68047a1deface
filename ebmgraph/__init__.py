"""ebmgraph: energy-based model training algorithms as declarative dataflow graphs."""

from ebmgraph.version import __version__

__all__ = ["__version__"]
