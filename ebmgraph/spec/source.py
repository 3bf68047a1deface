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


MAX_BYTES = 1 << 20      # a graph file is a page of settings: larger documents are refused
MAX_VALUES = 100_000     # values read, aliases expanded (a bound on "billion laughs" documents)
MAX_DEPTH = 64           # nesting of mappings and sequences
PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _location(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _refuse(file: str, node: yaml.Node, path: Path_, message: str) -> GraphError:
    loc = _location(file, node)
    return GraphError([Diagnostic(file, loc.line, loc.column, dotted(path), message)])


def _scalar(node: yaml.Node, file: str, path: Path_):
    """A scalar's value; unknown tags, ``!!python/...`` tags and unreadable values are located errors."""
    if not isinstance(node, yaml.ScalarNode):
        raise _refuse(file, node, path, "keys must be scalars (strings or numbers), not a list or mapping")
    try:
        return GraphLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:
        problem = getattr(error, "problem", None) or str(error)
        raise _refuse(file, node, path, f"cannot read this value: {problem}") from None


class _Walk:
    """Builds the Python data of a composed document with every key's and value's location,
    within MAX_VALUES values and MAX_DEPTH levels; a recursive alias is an error."""

    def __init__(self, file: str, src: Source):
        self.file, self.src, self.values, self.open = file, src, 0, set()

    def __call__(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _refuse(self.file, node, path, f"the document holds more than {MAX_VALUES} values (aliases "
                                                 "expanded); a graph file is refused beyond that")
        if len(path) > MAX_DEPTH:
            raise _refuse(self.file, node, path, f"nested more than {MAX_DEPTH} levels deep")
        if id(node) in self.open:
            raise _refuse(self.file, node, path, "recursive alias: this value contains itself")
        self.src.value_locations[path] = _location(self.file, node)
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            return _scalar(node, self.file, path)
        if node.tag not in PLAIN_TAGS:
            raise _refuse(self.file, node, path, f"cannot read this value: the tag '{node.tag}' is not allowed "
                                                 "(graph files hold plain mappings, lists and scalars)")
        self.open.add(id(node))
        try:
            return self._mapping(node, path) if isinstance(node, yaml.MappingNode) else \
                [self(item, path + (i,)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict:
        out = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, self.file, path)
            if key in out:
                raise _refuse(self.file, key_node, path + (key,), f"duplicate key '{key}'")
            self.src.key_locations[path + (key,)] = _location(self.file, key_node)
            out[key] = self(value_node, path + (key,))
        return out


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
    except RecursionError:
        raise GraphError([Diagnostic(file, None, None, "", f"invalid YAML: nested more than {MAX_DEPTH} levels "
                                                           "deep")]) from None
    if root is None:
        raise GraphError([Diagnostic(file, 1, 1, "", "the graph file is empty")])
    if not isinstance(root, yaml.MappingNode):
        raise GraphError([Diagnostic(file, 1, 1, "", "expected a mapping of sections at the top level")])
    src.data = _Walk(file, src)(root)
    return src


def load_file(path: str | Path) -> Source:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise GraphError([Diagnostic(str(path), None, None, "", f"the graph file has {size} bytes, more than "
                                                                     f"{MAX_BYTES}: refused")])
        data = path.read_bytes()
    except OSError as error:
        raise GraphError([Diagnostic(str(path), None, None, "", f"cannot read graph file: {error.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise GraphError([Diagnostic(str(path), line, 1, "", f"not UTF-8 text: byte {data[error.start]:#x} at "
                                                                f"offset {error.start}")]) from None
    return load_source(text, str(path))
