"""Registries of node, model and optimizer types, keyed by the ``type`` name used in graph files."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import torch

from ebmgraph.nodes.ports import Port, ShapeError, Value

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class table for one family of types (nodes, models, optimizers)."""

    def __init__(self, what: str):
        self.what = what
        self._types: dict[str, T] = {}

    def register(self, cls: T) -> T:
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


@attrs.define
class NoConfig:
    """A node type without configuration."""


class Node(abc.ABC):
    """Base class of node types.

    Subclasses declare ``type_name``, ``family``, an attrs ``Config`` class and their ``inputs``
    and ``outputs`` ports. Model ports are bound once at build time (``self.models[port]``);
    tensor ports are the keyword arguments of ``__call__``, which returns a dict of outputs.
    """

    type_name: ClassVar[str]
    family: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    def __init__(self, name: str, config: Any, models: dict[str, torch.nn.Module], device: torch.device):
        self.name = name
        self.config = config
        self.models = models
        self.device = device

    @classmethod
    def model_inputs(cls) -> tuple[Port, ...]:
        return tuple(p for p in cls.inputs if p.type.kind == "model")

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @abc.abstractmethod
    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        """Output values (types and shapes) from input values, without real tensors."""

    @abc.abstractmethod
    def __call__(self, ctx, **inputs) -> dict[str, torch.Tensor]:
        """Run the node on real tensors; ``ctx`` gives the step, the node's generator and logging."""

    def check_model_input(self, model_port: str, input_port: str, value: Value) -> tuple[int, ...]:
        """Run the bound model on a meta tensor of ``value``'s shape; return the output shape."""
        model = self.models[model_port]
        try:
            with torch.no_grad():
                out = model(torch.empty(value.shape, device="meta"))
        except (RuntimeError, ValueError, IndexError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ShapeError(input_port, f"model bound to '{model_port}' cannot take shape {tuple(value.shape)}: "
                                         f"{first_line}") from None
        return tuple((out[0] if isinstance(out, tuple) else out).shape)

    def check_energy_input(self, input_port: str, value: Value, model_port: str = "energy") -> tuple[int, ...]:
        """Like ``check_model_input``, for an energy: it must give one scalar per sample."""
        shape = self.check_model_input(model_port, input_port, value)
        if shape != tuple(value.shape[:1]):
            raise ShapeError(input_port, f"energy must give one scalar per sample, shape {tuple(value.shape[:1])}, "
                                         f"but gives {shape}")
        return shape

    def write(self, ctx, **delayed) -> None:
        """Store delay inputs at the end of the step (banks only)."""


NODES: Registry[type[Node]] = Registry("node")


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
