"""Load a graph file into a GraphSpec: profile and overrides, then every section, all errors at once."""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import Any, Protocol

import attrs

from ebmgraph.errors import Diagnostic, GraphError
from ebmgraph.spec.convert import describe, structure
from ebmgraph.spec.lr_schedule import parse_schedule
from ebmgraph.spec.overrides import apply_profile, apply_set
from ebmgraph.spec.schema import (BINDING_KEYS, MODEL_KEYS, REQUIRED_SECTIONS, SECTIONS, EvalSpec, GraphSpec, ModelSpec,
                                  NodeSpec, OptimizerSpec, ScheduleSpec, TrainSpec)
from ebmgraph.spec.source import Path_, Source
from ebmgraph.spec.suggest import did_you_mean, one_of


class TypeTable(Protocol):
    """Name -> type class (``type_name``, ``Config`` and, for nodes, ``inputs``)."""

    def get(self, name: str) -> Any: ...

    def names(self) -> list[str]: ...


@attrs.frozen
class Catalog:
    """The node, model and optimizer types a graph file may name (given by a higher layer)."""

    nodes: TypeTable
    models: TypeTable
    optimizers: TypeTable


class _Loader:
    def __init__(self, src: Source, catalog: Catalog):
        self.src = src
        self.catalog = catalog
        self.errors: list[Diagnostic] = []

    def error(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.errors.append(self.src.diagnostic(path, message, key=key))

    def value(self, section: str, cls: type, default: Any) -> Any:
        raw = self.src.data.get(section)
        if raw is None:
            return default
        result = structure(cls, raw, self.src, (section,), self.errors)
        for key, message in getattr(result, "problems", lambda: [])():
            self.error((section, key), message, key=key not in raw)
        return default if result is None else result

    def mapping(self, section: str) -> dict:
        raw = self.src.data.get(section)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error((section,), f"expected a mapping of names to entries, found {describe(raw)}")
            return {}
        return raw

    def _typed(self, body: Any, path: Path_, registry, what: str, extra: tuple[str, ...]):
        """(type class, config, extra values) of one ``{type: ..., ...}`` entry, or None."""
        if not isinstance(body, dict):
            self.error(path, f"expected a mapping with a 'type' key, found {describe(body)}")
            return None
        type_name = body.get("type")
        if type_name is None:
            self.error(path, f"missing required key 'type' (one of the {what} types: {one_of(registry.names())})")
            return None
        cls = registry.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            shown = f"'{type_name}'" if isinstance(type_name, str) else describe(type_name)
            self.error(path + ("type",), f"unknown {what} type {shown}{did_you_mean(type_name, registry.names())}; "
                                         f"{what} types: {one_of(registry.names())} (plugins add more)")
            return None
        fields = [f.name for f in attrs.fields(cls.Config)]
        allowed = set(fields) | set(extra) | {"type"}
        ok = True
        for key in body:
            if key not in allowed:
                self.error(path + (key,), f"unknown key '{key}' for {what} type '{type_name}'"
                                          f"{did_you_mean(key, allowed)}; expected one of {one_of(allowed)}", key=True)
                ok = False
        config = structure(cls.Config, {k: v for k, v in body.items() if k in fields}, self.src, path, self.errors)
        if config is None or not ok:
            return None
        for key, message in getattr(config, "problems", lambda: [])():
            self.error(path + (key,), message, key=key not in body)
        return cls, config, {k: body[k] for k in extra if k in body}

    def node(self, body: Any, path: Path_) -> NodeSpec | None:
        ports = self._port_names(body.get("type")) if isinstance(body, dict) else ()
        typed = self._typed(body, path, self.catalog.nodes, "node", ports)
        if typed is None:
            return None
        cls, config, wired = typed
        inputs = {}
        optional = {p.name for p in cls.inputs if p.optional}
        for port, ref in wired.items():
            if ref is None and port in optional:
                continue  # null unwires an optional input (e.g. from a profile or --set)
            if not isinstance(ref, str):
                self.error(path + (port,), f"expected a reference 'node' or 'node.port' for input port '{port}', "
                                           f"found {describe(ref)}"
                                           + ("" if ref is not None else " (null unwires optional ports only)"))
            else:
                inputs[port] = ref
        return NodeSpec(type=cls.type_name, inputs=inputs, config=config)

    def _port_names(self, type_name: Any) -> tuple[str, ...]:
        cls = self.catalog.nodes.get(type_name) if isinstance(type_name, str) else None
        return tuple(p.name for p in cls.inputs) if cls else ()

    def model(self, body: Any, path: Path_) -> ModelSpec | None:
        typed = self._typed(body, path, self.catalog.models, "model", MODEL_KEYS)
        if typed is None:
            return None
        compiled = structure(bool, typed[2].get("compile", False), self.src, path + ("compile",), self.errors)
        return ModelSpec(type=typed[0].type_name, config=typed[1], compile=bool(compiled))

    def optimizer(self, body: Any, path: Path_) -> OptimizerSpec | None:
        typed = self._typed(body, path, self.catalog.optimizers, "optimizer", BINDING_KEYS)
        if typed is None:
            return None
        cls, config, binding = typed
        lists = {}
        for key in ("models", "losses"):
            value = binding.get(key)
            if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                self.error(path + (key,) if key in binding else path,
                           f"expected a non-empty list of {ENTRY_NAMES[key]} names for key '{key}', found "
                           f"{describe(value) if key in binding else 'nothing'}")
            lists[key] = value if isinstance(value, list) else []
        clip = structure(float | None, binding.get("clip_grad_norm"), self.src, path + ("clip_grad_norm",),
                         self.errors)
        schedule = parse_schedule(binding.get("schedule"), self.src, path + ("schedule",), self.errors,
                                  lr if isinstance(lr := getattr(config, "lr", None), float) else None)
        return OptimizerSpec(type=cls.type_name, models=lists["models"], losses=lists["losses"],
                             clip_grad_norm=clip, config=config, schedule=schedule)

    def entries(self, section: str, make) -> dict:
        out = {}
        for name, body in self.mapping(section).items():
            if not _valid_name(name):
                self.error((section, name), f"invalid name {describe(name)}: names must be Python identifiers "
                                            f"(letters, digits, underscores), not keywords, not starting with '_', "
                                            f"and not one of {one_of(RESERVED_NAMES)}", key=True)
                continue
            made = make(body, (section, name))
            if made is not None:
                out[name] = made
        return out

    def distinct_losses(self) -> dict:
        """The losses, none named like a node (nodes and losses share one namespace)."""
        losses = self.entries("losses", self.node)
        for name in set(losses) & set(self.mapping("nodes")):
            self.error(("losses", name), f"'{name}' names both a node and a loss; nodes and losses share one "
                                         "namespace (their names are the variables of the generated step)", key=True)
        return losses

    def graph(self, profile: str | None) -> GraphSpec:
        data = self.src.data
        for key in data:
            if key not in SECTIONS:
                self.error((key,), f"unknown section '{key}'{did_you_mean(key, SECTIONS)}; expected one of "
                                   f"{one_of(SECTIONS)}", key=True)
        for key in REQUIRED_SECTIONS:
            if key not in data:
                self.errors.append(Diagnostic(self.src.file, 1, 1, key, "missing required section"))
        name = self.value("name", str, "")
        if "name" in data and isinstance(name, str) and not GRAPH_NAME.fullmatch(name):
            self.error(("name",), f"invalid graph name {name!r}: it names run directories and appears in generated "
                                  "code, so it must start with a letter and hold only letters, digits, '_' and '-' "
                                  "(at most 100)")
        paper = self.value("paper", str, "")
        seed = self.value("seed", int, 0)
        if isinstance(seed, int) and not 0 <= seed < 2**63:
            self.error(("seed",), f"must be in [0, 2**63), found {seed}")
        plugins = plugin_entries(self.src)
        data_node = self.node(data["data"], ("data",)) if "data" in data else None
        spec = GraphSpec(
            name=name, paper=paper, seed=seed, data=data_node,
            models=self.entries("models", self.model),
            nodes=self.entries("nodes", self.node),
            losses=self.distinct_losses(),
            optimizers=self.entries("optimizers", self.optimizer),
            schedule=self.value("schedule", ScheduleSpec, ScheduleSpec()),
            train=self.value("train", TrainSpec, TrainSpec()),
            eval=self.value("eval", EvalSpec, EvalSpec()),
            plugins=plugins, profile=profile, source=self.src)
        if self.errors:
            raise GraphError(self.errors)
        return spec


RESERVED_NAMES = ("data", "ctx", "N", "O")
GRAPH_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
ENTRY_NAMES = {"models": "model", "losses": "loss"}


def _valid_name(name: Any) -> bool:
    """Node and model names become variables of the generated step."""
    return (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
            and not name.startswith("_") and name not in RESERVED_NAMES)


def plugin_entries(src: Source) -> list[str]:
    """The ``plugins:`` entries: module names as written, ``.py`` files as absolute paths (relative
    ones are relative to the graph file's folder); a malformed list is a located GraphError."""
    raw = src.data.get("plugins")
    if raw is None:
        return []
    if not (isinstance(raw, list) and all(isinstance(entry, str) and entry for entry in raw)):
        raise GraphError([src.diagnostic(("plugins",), "expected a list of module names or .py file paths, "
                                                       f"found {describe(raw)}")])
    folder = Path(src.file).parent if Path(src.file).is_file() else Path.cwd()
    return [str((folder / entry).resolve()) if entry.endswith(".py") else entry for entry in raw]


def prepare(src: Source, profile: str | None = None, overrides: tuple[str, ...] = ()) -> str | None:
    """Apply ``profile`` and ``overrides`` to ``src`` in place; return the profile applied."""
    applied = apply_profile(src, profile)
    for assignment in overrides:
        apply_set(src, assignment)
    return applied


def structure_graph(src: Source, catalog: Catalog, profile: str | None = None) -> GraphSpec:
    """Structure every section of a prepared ``src`` against ``catalog``; raises GraphError listing
    every problem."""
    return _Loader(src, catalog).graph(profile)


def resolve(src: Source, catalog: Catalog, profile: str | None = None, overrides: tuple[str, ...] = ()) -> GraphSpec:
    """Apply ``profile`` and ``overrides`` to ``src``, then structure every section against
    ``catalog``; raises GraphError listing every problem."""
    return structure_graph(src, catalog, prepare(src, profile, overrides))
