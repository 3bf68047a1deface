"""Every built-in node, model and optimizer type, registered by importing its module."""

from ebmgraph.nodes import banks, data, ema, energies, kernels, losses, noise, optimizers  # noqa: F401
from ebmgraph.nodes.registry import MODELS, NODES, OPTIMIZERS

__all__ = ["MODELS", "NODES", "OPTIMIZERS"]
