"""ebmgraph: energy-based model training algorithms as declarative dataflow graphs."""

__version__ = "0.1.0"
