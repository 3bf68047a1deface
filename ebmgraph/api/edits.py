"""Changes to a graph made in Python: merged into a copy of its raw mapping as ``--set`` merges
them, then resolved again as a file is (plugins imported, every section structured), so every rule
and message of the file format applies."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import attrs

from ebmgraph.engine.load import resolve_source
from ebmgraph.spec.overrides import set_value
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.spec.source import Location, Source


def resolve_changes(src: Source, profile: str | None, changes: Iterable[tuple[str, Any]], origin: str) -> GraphSpec:
    """The graph of ``src`` (whose profile ``profile`` is already applied) with each (dotted key, value)
    of ``changes`` merged in order; ``src`` is left as it is. Raises GraphError naming ``origin``."""
    data = copy.deepcopy({key: value for key, value in src.data.items() if key != "profiles"})
    edited = attrs.evolve(src, data=data, key_locations=dict(src.key_locations),
                          value_locations=dict(src.value_locations))
    location = Location(origin, None, None)
    for key, value in changes:
        set_value(edited, key, value, location)
    return attrs.evolve(resolve_source(edited), profile=profile)
