"""Composing trained energies: E(x) = sum_i w_i E_i(x), the product of experts
prod_i exp(-w_i E_i(x)), sampled with the first run's kernel (``ebmgraph sample --energy``)."""

from __future__ import annotations

import torch
from torch import nn


class WeightedEnergy(nn.Module):
    """sum_i w_i E_i(x) of energies on the same samples."""

    def __init__(self, energies: list[nn.Module], weights: list[float]):
        super().__init__()
        self.energies = nn.ModuleList(energies)
        self.weights = list(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(weight * energy(x) for weight, energy in zip(self.weights, self.energies))

    def describe(self, names: list[str]) -> str:
        return " + ".join(f"{weight:g} * {name}" for weight, name in zip(self.weights, names))
