"""Plugins: the user's modules and ``.py`` files that register node, model and optimizer types.
Importing a plugin runs the user's code; nothing else in a graph file ever does."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ebmgraph.nodes.catalog import MODELS, NODES, OPTIMIZERS

_LOADED: dict[str, ModuleType] = {}


class PluginError(Exception):
    """A plugin could not be imported, or registered nothing."""


def _registered() -> set[tuple[str, str]]:
    return {(registry.what, name) for registry in (NODES, MODELS, OPTIMIZERS) for name in registry.names()}


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise PluginError(f"plugin file '{path}' not found")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"ebmgraph_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _where(error: BaseException, entry: str) -> str:
    """The plugin's own file and line where ``error`` arose (the innermost frame in that file)."""
    if isinstance(error, SyntaxError) and error.filename:
        return f" ({error.filename}:{error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if entry.endswith(".py") and Path(f.filename).resolve() == Path(entry)] or frames[-1:]
    return f" ({own[-1].filename}:{own[-1].lineno})" if own else ""


def import_plugin(entry: str) -> ModuleType:
    """Import plugin ``entry`` (a module name, or the absolute path of a ``.py`` file) once per
    process; a plugin that fails, or registers no type on its first import, raises PluginError."""
    if entry in _LOADED:
        return _LOADED[entry]
    imported_before = not entry.endswith(".py") and entry in sys.modules
    before = _registered()
    try:
        module = _import_file(Path(entry)) if entry.endswith(".py") else importlib.import_module(entry)
    except PluginError:
        raise
    except Exception as error:  # the user's code: report it with its own location
        raise PluginError(f"plugin '{entry}' failed to import: {type(error).__name__}: {error}"
                          f"{_where(error, entry)}") from error
    if not imported_before and _registered() == before:
        raise PluginError(f"plugin '{entry}' registered no node, model or optimizer type (register them with "
                          "ebmgraph.nodes.register)")
    _LOADED[entry] = module
    return module
