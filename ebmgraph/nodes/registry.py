"""Registries of node, model and optimizer types, keyed by the ``type`` name used in graph files;
the model and optimizer bases (the node contract is in nodes/node.py)."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import torch

from ebmgraph.nodes.node import Node, contract_problems

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class table for one family of types (nodes, models, optimizers)."""

    def __init__(self, what: str, contract: Callable[[type], list[str]] | None = None):
        self.what = what
        self.contract = contract
        self._types: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Add ``cls`` under its ``type_name``; a class that breaks the contract is refused, naming why."""
        problems = self.contract(cls) if self.contract else []
        if problems:
            raise TypeError(f"{self.what} type {getattr(cls, '__name__', cls)!r} cannot be registered: "
                            + "; ".join(problems))
        name = cls.type_name
        if name in self._types:
            raise ValueError(f"{self.what} type '{name}' is registered twice")
        self._types[name] = cls
        return cls

    def get(self, name: str) -> T | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Iterator[T]:
        return iter(self._types[name] for name in self.names())


NODES: Registry[type[Node]] = Registry("node", contract_problems)


class ModelType(abc.ABC):
    """Base class of model types: ``build`` makes an ``nn.Module`` for samples of ``input_shape``
    (the per-sample shape, batch excluded)."""

    type_name: ClassVar[str]
    role: ClassVar[str]
    Config: ClassVar[type]

    @classmethod
    @abc.abstractmethod
    def build(cls, config: Any, input_shape: tuple[int, ...]) -> torch.nn.Module:
        """Make the module."""

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")


class DerivedModelType(abc.ABC):
    """A model made from another model named by the config's ``of`` (e.g. an EMA copy); its role is
    the role of that model."""

    type_name: ClassVar[str]
    Config: ClassVar[type]

    @classmethod
    @abc.abstractmethod
    def build_from(cls, config: Any, source: torch.nn.Module) -> torch.nn.Module:
        """Make the module from the built source model."""

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")


MODELS: Registry[type[ModelType] | type[DerivedModelType]] = Registry("model")


class OptimizerType(abc.ABC):
    """Base class of optimizer types: ``build`` makes a ``torch.optim.Optimizer``."""

    type_name: ClassVar[str]
    Config: ClassVar[type]

    @classmethod
    @abc.abstractmethod
    def build(cls, params: list[torch.nn.Parameter], config: Any) -> torch.optim.Optimizer:
        """Make the optimizer over ``params``."""

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")


OPTIMIZERS: Registry[type[OptimizerType]] = Registry("optimizer")


def register(cls: type) -> type:
    """Register a node, model or optimizer type under its ``type_name`` (use as a class decorator);
    the registry is chosen by the class's base (``Node``, ``ModelType`` or ``DerivedModelType``,
    ``OptimizerType``). A node type that breaks the contract is refused with the reason."""
    if isinstance(cls, type) and issubclass(cls, (ModelType, DerivedModelType)):
        return MODELS.register(cls)
    if isinstance(cls, type) and issubclass(cls, OptimizerType):
        return OPTIMIZERS.register(cls)
    return NODES.register(cls)
