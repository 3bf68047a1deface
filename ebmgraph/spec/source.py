"""YAML loading that remembers where every key and value came from (file, line, column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import re

import attrs
import yaml

from ebmgraph.errors import Diagnostic, GraphError

Path_ = tuple[str | int, ...]


@attrs.frozen
class Location:
    file: str
    line: int | None
    column: int | None


@attrs.define
class Source:
    """Plain data loaded from YAML plus a map from dotted paths to their locations.

    ``key_locations`` points at a mapping key (used for unknown keys); ``value_locations`` at
    the value (used for wrong types and bad references).
    """

    data: dict
    key_locations: dict[Path_, Location] = attrs.field(factory=dict)
    value_locations: dict[Path_, Location] = attrs.field(factory=dict)
    file: str = "<memory>"

    def locate(self, path: Path_, *, key: bool = False) -> Location | None:
        """Location of ``path``, falling back to the nearest located parent."""
        table = self.key_locations if key else self.value_locations
        for end in range(len(path), -1, -1):
            prefix = tuple(path[:end])
            if prefix in table:
                return table[prefix]
            if prefix in self.value_locations:
                return self.value_locations[prefix]
        return None

    def diagnostic(self, path: Path_, message: str, *, key: bool = False) -> Diagnostic:
        loc = self.locate(path, key=key)
        return Diagnostic(
            file=loc.file if loc else self.file,
            line=loc.line if loc else None,
            column=loc.column if loc else None,
            path=dotted(path),
            message=message,
        )


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class GraphLoader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-4`` as a number (YAML 1.2; PyYAML's 1.1 rules need ``1.0e-4``)."""


GraphLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_value(text: str):
    """A YAML scalar or flow value as graph files read it (used for ``--set``)."""
    return yaml.load(text, Loader=GraphLoader)


def _scalar(node: yaml.Node):
    return GraphLoader("").construct_object(node, deep=True)


def _location(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, path: Path_, file: str, src: Source) -> Any:
    src.value_locations[path] = _location(file, node)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                loc = _location(file, key_node)
                raise GraphError([Diagnostic(file, loc.line, loc.column, dotted(path + (key,)),
                                             f"duplicate key '{key}'")])
            src.key_locations[path + (key,)] = _location(file, key_node)
            out[key] = _walk(value_node, path + (key,), file, src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, path + (i,), file, src) for i, item in enumerate(node.value)]
    return _scalar(node)


def load_source(text: str, file: str) -> Source:
    """Parse YAML text; syntax errors become a GraphError with the file and line."""
    src = Source(data={}, file=file)
    try:
        root = yaml.compose(text, Loader=GraphLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = getattr(error, "problem", None) or str(error)
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark:
            problem += f" ({context} that starts at line {context_mark.line + 1}, column {context_mark.column + 1})"
        raise GraphError([Diagnostic(file, line, col, "", f"invalid YAML: {problem}")]) from None
    if root is None:
        raise GraphError([Diagnostic(file, 1, 1, "", "the graph file is empty")])
    if not isinstance(root, yaml.MappingNode):
        raise GraphError([Diagnostic(file, 1, 1, "", "expected a mapping of sections at the top level")])
    src.data = _walk(root, (), file, src)
    return src


def load_file(path: str | Path) -> Source:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise GraphError([Diagnostic(str(path), None, None, "", f"cannot read graph file: {error.strerror}")]) from None
    return load_source(text, str(path))
