"""Port types: what may flow along an edge, and the shapes checked before any real tensor exists."""

from __future__ import annotations

from typing import Literal

import attrs

Kind = Literal["sample", "energy", "loss", "model", "label", "logits"]


@attrs.frozen
class PortType:
    """``Sample`` (a batch of states), ``Energy`` (per-sample scalars), ``Loss`` (a scalar),
    ``Label`` (int64 class indices, shape (batch,)), ``Logits`` (a classifier's f(x), shape
    (batch, classes)) or ``Model[role]`` (a reference to a model with that role)."""

    kind: Kind
    role: str | None = None

    def __str__(self) -> str:
        name = self.kind.capitalize()
        return f"{name}[{self.role}]" if self.role else name


SAMPLE = PortType("sample")
ENERGY = PortType("energy")
LOSS = PortType("loss")
LABEL = PortType("label")
LOGITS = PortType("logits")


def model_ref(role: str) -> PortType:
    return PortType("model", role)


@attrs.frozen
class Port:
    """A named input or output of a node type.

    ``delay`` marks a bank's write input: its value is stored at the end of the step and read at
    the start of the next, so the edge is a unit delay and never closes a cycle.
    ``stop_gradient`` marks an output that is a constant for parameter learning (a kernel's
    samples): no parameter gradient flows back through edges leaving it.
    """

    name: str
    type: PortType
    doc: str = ""
    optional: bool = False
    delay: bool = False
    stop_gradient: bool = False


@attrs.frozen
class Value:
    """What the checker knows about a value on an edge: its port type and full shape (batch first)."""

    type: PortType
    shape: tuple[int, ...] | None = None

    def describe(self) -> str:
        return f"{self.type} of shape {tuple(self.shape)}" if self.shape is not None else str(self.type)


class ShapeError(Exception):
    """Raised during shape propagation; ``port`` is the input port whose value does not fit."""

    def __init__(self, port: str, detail: str):
        super().__init__(detail)
        self.port = port
        self.detail = detail


def label_shape(port: str, value: Value) -> tuple[int, ...]:
    """The shape of the labels arriving on input ``port``. A data node without labels (an npz file
    without its ``label_key`` array) gives a ``Label`` value without a shape: a ShapeError here."""
    if value.shape is None:
        raise ShapeError(port, "the data set has no labels (an npz file needs the array named by 'label_key')")
    return value.shape
