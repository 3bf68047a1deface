"""Exceptions that carry user-facing messages (file, line, node names)."""

from __future__ import annotations

import attrs


@attrs.frozen
class Diagnostic:
    """One problem found in a graph file: where it is and what is wrong."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class GraphError(Exception):
    """A graph file that cannot be run; holds every problem found, not only the first."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class NodeError(RuntimeError):
    """An exception raised inside a node while the step ran, located in the graph file."""


class DivergenceError(RuntimeError):
    """A loss or energy became non-finite; the run stops and keeps its last good checkpoint.
    ``tensors`` holds statistics of the offending values (name → plain data) for the run's
    divergence record."""

    def __init__(self, message: str, tensors: dict[str, dict] | None = None):
        super().__init__(message)
        self.tensors = tensors or {}


class DataError(RuntimeError):
    """A data file is missing or malformed; the message names the file."""
