"""Strict cattrs structuring that turns every problem into a located Diagnostic.

cattrs collects all errors of a class at once (detailed validation); this module walks its
exception tree, rebuilds the dotted path of each error and looks its line up in the Source.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from ebmgraph.errors import Diagnostic
from ebmgraph.spec.source import Path_, Source
from ebmgraph.spec.suggest import did_you_mean, one_of


def describe(value: Any) -> str:
    """How a found value is named in messages: ``'abc' (a string)``."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind
    return f"{value!r} ({kind})"


class SpecTypeError(TypeError):
    """Raised by the strict hooks; its message already reads 'expected ..., found ...'."""


def _strict(expected: str, accepts):
    def hook(value, _type):
        if not accepts(value):
            raise SpecTypeError(f"expected {expected}, found {describe(value)}")
        return _type(value) if _type in (int, float, str, bool) else value
    return hook


def _literal_hook(value, literal_type):
    choices = typing.get_args(literal_type)
    if value not in choices:
        hint = did_you_mean(value, map(str, choices)) if isinstance(value, str) else ""
        raise SpecTypeError(f"expected one of {one_of(map(str, choices))}, found {describe(value)}{hint}")
    return value


def _is_fixed_tuple(type_) -> bool:
    args = typing.get_args(type_)
    return typing.get_origin(type_) is tuple and bool(args) and Ellipsis not in args


def _fixed_tuple_hook(converter: cattrs.Converter):
    def hook(value, tuple_type):
        args = typing.get_args(tuple_type)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            found = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else describe(value)
            raise SpecTypeError(f"expected a list of {len(args)} values, found {found}")
        return tuple(converter.structure(item, arg) for item, arg in zip(value, args))
    return hook


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    not_bool = lambda v: not isinstance(v, bool)  # noqa: E731
    converter.register_structure_hook(int, _strict("an integer", lambda v: isinstance(v, int) and not_bool(v)))
    converter.register_structure_hook(
        float, _strict("a number", lambda v: isinstance(v, (int, float)) and not_bool(v)))
    converter.register_structure_hook(bool, _strict("true or false", lambda v: isinstance(v, bool)))
    converter.register_structure_hook(str, _strict("a string", lambda v: isinstance(v, str)))
    converter.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal_hook)
    converter.register_structure_hook_func(_is_fixed_tuple, _fixed_tuple_hook(converter))
    return converter


CONVERTER = make_converter()


def _note_part(error: BaseException) -> str | int | None:
    for note in getattr(error, "__notes__", []):
        name = getattr(note, "name", None)
        if isinstance(name, str):
            return name
        index = getattr(note, "index", None)
        if isinstance(index, int):
            return index
    return None


def _message(error: BaseException, raw: Any, path: Path_) -> str:
    if isinstance(error, SpecTypeError):
        return str(error)
    if isinstance(error, KeyError):
        return "missing required key"
    found = _lookup(raw, path)
    return f"{error}, found {describe(found)}" if found is not _MISSING else str(error)


_MISSING = object()


def _lookup(raw: Any, path: Path_) -> Any:
    for part in path:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return raw


def _collect(error: BaseException, src: Source, base: Path_, rel: Path_, raw: Any, out: list[Diagnostic]) -> None:
    part = _note_part(error)
    here = rel + ((part,) if part is not None else ())
    if isinstance(error, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(error.cl)]
        for key in sorted(error.extra_fields):
            out.append(src.diagnostic(base + here + (key,),
                                      f"unknown key '{key}'{did_you_mean(key, known)}; expected one of {one_of(known)}",
                                      key=True))
        return
    if isinstance(error, (ClassValidationError, IterableValidationError)):
        for sub in error.exceptions:
            _collect(sub, src, base, here, raw, out)
        return
    out.append(src.diagnostic(base + here, _message(error, raw, here)))


def structure(cls: type, raw: Any, src: Source, path: Path_, out: list[Diagnostic]):
    """Structure ``raw`` into ``cls``; on failure append located diagnostics and return None."""
    if attrs.has(cls) and not isinstance(raw, dict):
        out.append(src.diagnostic(path, f"expected a mapping, found {describe(raw)}"))
        return None
    try:
        return CONVERTER.structure(raw, cls)
    except (ClassValidationError, IterableValidationError) as error:
        _collect(error, src, path, (), raw, out)
    except (SpecTypeError, ValueError, TypeError) as error:
        out.append(src.diagnostic(path, _message(error, raw, ())))
    return None


def unstructure(obj: Any) -> Any:
    return CONVERTER.unstructure(obj)
