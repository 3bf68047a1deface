"""Finding non-finite values in nested state (dicts, lists, tuples, attrs classes of tensors)."""

from __future__ import annotations

import torch


def _tensors(value, path: str):
    """(path, tensor) of every tensor in nested dicts, lists, tuples and attrs states."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{path}[{index}]")
    elif hasattr(value, "__attrs_attrs__"):
        yield from _tensors({f.name: getattr(value, f.name) for f in value.__attrs_attrs__}, path)


def first_non_finite(parts: dict) -> tuple[str, torch.Tensor] | None:
    """The path (``part.key[index]``) and value of the first floating-point tensor holding a NaN or
    infinity."""
    for path, tensor in (item for name, part in parts.items() for item in _tensors(part, name)):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return path, tensor
    return None
