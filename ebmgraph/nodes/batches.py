"""Batch operations: joining two batches of samples into one, adding two batches."""

from __future__ import annotations

import torch

from ebmgraph.nodes.ports import SAMPLE, Port, ShapeError, Value
from ebmgraph.nodes.node import BatchOperation
from ebmgraph.nodes.registry import NODES


@NODES.register
class Concatenate(BatchOperation):
    """The samples of ``first`` followed by those of ``second`` (e.g. DAMC's prior chains: amortized
    draws plus as many noise-initialized ones, Listing 2)."""

    type_name = "concatenate"
    inputs = (Port("first", SAMPLE, "the first batch"), Port("second", SAMPLE, "the second batch"))
    outputs = (Port("x", SAMPLE, "both batches, first then second"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        first, second = inputs["first"].shape, inputs["second"].shape
        if first[1:] != second[1:]:
            raise ShapeError("second", f"samples of shape {tuple(second[1:])} cannot follow samples of shape "
                                       f"{tuple(first[1:])}")
        return {"x": Value(SAMPLE, (first[0] + second[0], *first[1:]))}

    def __call__(self, ctx, first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": torch.cat([first, second])}


@NODES.register
class Add(BatchOperation):
    """The elementwise sum ``first + second`` of two batches of the same shape (e.g. data plus a
    small gaussian perturbation, Hat EBM's "data epsilon")."""

    type_name = "add"
    inputs = (Port("first", SAMPLE, "a batch"), Port("second", SAMPLE, "a batch of the same shape"))
    outputs = (Port("x", SAMPLE, "their sum"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        if inputs["first"].shape != inputs["second"].shape:
            raise ShapeError("second", f"a batch of shape {tuple(inputs['second'].shape)} cannot be added to one of "
                                       f"shape {tuple(inputs['first'].shape)}")
        return {"x": inputs["first"]}

    def __call__(self, ctx, first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": first + second}
