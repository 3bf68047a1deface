"""Test accuracy of a classifier energy (JEM, Grathwohl et al. 2019): the argmax over classes of
its logits f(x), against the labels."""

from __future__ import annotations

import torch


def classification_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                            device: torch.device, batch_size: int = 500) -> float:
    """Fraction of ``images`` whose largest logit ``model.logits(x)`` is at their label."""
    with torch.no_grad():
        predicted = torch.cat([model.logits(chunk.to(device)).argmax(dim=1).cpu()
                               for chunk in images.split(batch_size)])
    return (predicted == labels.cpu()).float().mean().item()
