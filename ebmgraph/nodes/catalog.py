"""Every built-in node, model and optimizer type, registered by importing its module."""

from ebmgraph.nodes import (  # noqa: F401
    amortized, amortizers, augment, banks, batches, classifier, contrastive, data, ema, encoders, energies,
    generator_space, generators, kernels, kl_losses, latent_losses, losses, multiscale, noise, optimizers, posterior,
    representations, spherical)
from ebmgraph.nodes.registry import MODELS, NODES, OPTIMIZERS

__all__ = ["MODELS", "NODES", "OPTIMIZERS"]
