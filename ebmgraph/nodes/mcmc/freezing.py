"""Parameters frozen while sampling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.utils import parametrize


@contextlib.contextmanager
def frozen_parameters(*modules: torch.nn.Module) -> Iterator[None]:
    """Switch parameter gradients off while sampling: no accumulation, and a cheaper backward.
    Parametrized weights (spectral norm) are computed once for the whole chain, not every step."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        with parametrize.cached():
            yield
    finally:
        for p in parameters:
            p.requires_grad_(True)
