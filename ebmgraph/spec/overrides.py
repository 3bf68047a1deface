"""Profiles (named override sets) and ``--set a.b.c=value`` overrides, merged into a Source."""

from __future__ import annotations

import copy

import yaml

from ebmgraph.errors import Diagnostic, GraphError
from ebmgraph.spec.source import Location, Path_, Source, parse_value
from ebmgraph.spec.suggest import did_you_mean, one_of


def merge(base: dict, override: dict, src: Source, base_path: Path_, override_path: Path_ | None,
          origin: Location | None = None) -> dict:
    """Deep-merge ``override`` into ``base``. A mapping whose ``type`` changes replaces the old one
    whole (its old keys belong to another type); ``null`` in place of a mapping removes it; lists
    and scalars replace.

    Locations of merged values are taken from ``override_path`` (a profile) or ``origin`` (``--set``)."""
    out = dict(base)
    if "type" in override and isinstance(base, dict) and override.get("type") != base.get("type"):
        out = {}
    for key, value in override.items():
        path = base_path + (key,)
        source_path = override_path + (key,) if override_path is not None else None
        if value is None and isinstance(out.get(key), dict):
            del out[key]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, src, path, source_path, origin)
        else:
            out[key] = copy.deepcopy(value)
            _relocate(src, path, source_path, origin)
            _relocate_subtree(src, path, source_path, origin, value)
    return out


def _relocate(src: Source, path: Path_, source_path: Path_ | None, origin: Location | None) -> None:
    for table in (src.key_locations, src.value_locations):
        located = table.get(source_path) if source_path is not None else origin
        if located is not None:
            table[path] = located


def _relocate_subtree(src: Source, path: Path_, source_path: Path_ | None, origin: Location | None, value) -> None:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        child_source = source_path + (key,) if source_path is not None else None
        _relocate(src, path + (key,), child_source, origin)
        _relocate_subtree(src, path + (key,), child_source, origin, child)


def apply_profile(src: Source, profile: str | None) -> str | None:
    """Merge profile ``profile`` (``default`` when None and present) into ``src.data``; return its name."""
    profiles = src.data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise GraphError([src.diagnostic(("profiles",), "expected a mapping of profile names to overrides")])
    if profile is None:
        profile = "default" if "default" in profiles else None
        if profile is None:
            return None
    if profile not in profiles:
        known = one_of(profiles) if profiles else "none"
        raise GraphError([Diagnostic(src.file, None, None, "profiles",
                                     f"unknown profile '{profile}'{did_you_mean(profile, profiles)}; "
                                     f"this graph has: {known}")])
    overrides = profiles[profile] or {}
    if not isinstance(overrides, dict):
        raise GraphError([src.diagnostic(("profiles", profile), "expected a mapping of overrides")])
    src.data = merge(src.data, overrides, src, (), ("profiles", profile))
    return profile


def apply_set(src: Source, assignment: str) -> None:
    """Apply one ``dotted.key=value`` (the value is parsed as YAML)."""
    origin = Location(f"--set {assignment}", None, None)
    if "=" not in assignment:
        raise GraphError([Diagnostic(origin.file, None, None, "", "expected KEY=VALUE, e.g. train.steps=100")])
    key, text = assignment.split("=", 1)
    try:
        value = parse_value(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        value = text  # not YAML: the text itself, which the loader then checks like any value
    set_value(src, key.strip(), value, origin)


def set_value(src: Source, key: str, value, origin: Location) -> None:
    """Merge plain ``value`` (YAML-like data) at dotted ``key`` as ``--set`` does; values and errors
    are located at ``origin``."""
    parts = key.split(".")
    _check_entry_exists(src, parts, value, origin)
    override: dict = {}
    cursor = override
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    src.data = merge(src.data, override, src, (), None, origin)


ENTRY_SECTIONS = {"models": "model", "nodes": "node", "losses": "loss", "optimizers": "optimizer"}


def _check_entry_exists(src: Source, parts: list[str], value, origin: Location) -> None:
    """``--set nodes.negativs.steps=5`` must not silently create a node named 'negativs'."""
    if len(parts) < 2 or parts[0] not in ENTRY_SECTIONS:
        return
    entries = src.data.get(parts[0]) or {}
    creates_whole_entry = len(parts) == 2 and isinstance(value, dict) and "type" in value
    if parts[1] in entries or creates_whole_entry:
        return
    what = ENTRY_SECTIONS[parts[0]]
    raise GraphError([Diagnostic(origin.file, None, None, ".".join(parts[:2]),
                                 f"unknown {what} '{parts[1]}'{did_you_mean(parts[1], entries)}; "
                                 f"a new {what} needs a mapping with a 'type'")])
