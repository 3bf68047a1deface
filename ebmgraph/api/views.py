"""Views of a graph's sections: reading gives the resolved value (defaults included), assigning
changes the graph, validated at once by the loader."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ebmgraph.spec.overrides import ENTRY_SECTIONS
from ebmgraph.spec.suggest import did_you_mean, one_of

if TYPE_CHECKING:
    from ebmgraph.api.graph import Graph


def shown(value: Any) -> str:
    """A value as change messages show it (shortened)."""
    return reprlib.repr(value)


class Entry:
    """One mapping of the graph (``graph.train``, ``graph.data``, ``graph.nodes["negatives"]``) with
    its keys as attributes: ``graph.nodes["negatives"].steps = 20``."""

    def __init__(self, graph: Graph, key: str):
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_key", key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._graph.get(f"{self._key}.{name}")
        except KeyError as error:
            raise AttributeError(error.args[0]) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._graph.set(f"{self._key}.{name}", value)

    def __dir__(self) -> list[str]:
        return sorted(self._graph.get(self._key))

    def __repr__(self) -> str:
        return f"<{self._key}: {self._graph.get(self._key)}>"


class Entries(MutableMapping):
    """A section of named entries (``graph.models``, ``graph.nodes``, ``graph.losses``,
    ``graph.optimizers``): ``section[name]`` is an Entry; assigning a mapping with a ``type`` adds
    or replaces an entry whole; ``del section[name]`` removes one."""

    def __init__(self, graph: Graph, section: str):
        self._graph = graph
        self._section = section

    def _names(self) -> dict:
        return self._graph.get(self._section)

    def _key(self, name: str) -> str:
        """The dotted key of entry ``name``; a KeyError with suggestions when there is none."""
        names = self._names()
        if name not in names:
            known = one_of(names) if names else "none"
            raise KeyError(f"{self._section}: unknown {ENTRY_SECTIONS[self._section]} '{name}'"
                           f"{did_you_mean(name, names)}; this graph has: {known}")
        return f"{self._section}.{name}"

    def __getitem__(self, name: str) -> Entry:
        return Entry(self._graph, self._key(name))

    def __setitem__(self, name: str, body: Any) -> None:
        key = f"{self._section}.{name}"
        # an entry there is first overwritten by a non-mapping, so that ``body`` replaces it where it
        # stands (node order matters) instead of merging into it
        cleared = [(key, "")] if name in self._names() else []
        self._graph._apply(cleared + [(key, body)], f"{self._section}[{name!r}] = {shown(body)}")

    def __delitem__(self, name: str) -> None:
        self._graph._apply([(self._key(name), None)], f"del {self._section}[{name!r}]")

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names()))

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"<{self._section}: {', '.join(self._names()) or 'none'}>"
