"""Latent-conditional energies of a spherical latent-variable EBM (CLEL, Lee et al. 2023, §4.2-4.4):
set latents z_A = Σ_i z_i / ‖Σ_i z_i‖ of instances' latents, the composed energy of eq. 15, the
OOD score of eq. 14, and the digits checks that conditional and composed samples land where
their conditions point."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ebmgraph.eval.digits_classifier import NUM_CLASSES, classifier_logits, load_classifier
from ebmgraph.nodes.spherical import SphericalEnergyNet

#: Class triples (a, b, c) of the composition check: E(x | {a, b}) + E(x | {b, c}) should give b.
COMPOSED_TRIPLES = tuple((y, (y + 1) % NUM_CLASSES, (y + 2) % NUM_CLASSES) for y in range(NUM_CLASSES))


class ConditionalEnergy(nn.Module):
    """E(x | A) = ½‖f(x)‖² − β Σ_a cos(g(f(x)/‖f(x)‖), z_a) over the rows z_a of ``conditions``
    (eq. 15, with eq. 10's squared norm; one condition is the joint energy E(x, z_a) of eq. 10)."""

    def __init__(self, energy: SphericalEnergyNet, conditions: torch.Tensor):
        super().__init__()
        self.energy = energy
        self.register_buffer("conditions", F.normalize(conditions.reshape(-1, conditions.shape[-1]), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.energy.features(x)
        alignment = (self.energy.direction(f) @ self.conditions.T).sum(1)
        return 0.5 * f.pow(2).sum(1) - self.energy.beta * alignment


@torch.no_grad()
def latents(encoder: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """h(x)/‖h(x)‖ for every sample, in batches."""
    return torch.cat([F.normalize(encoder(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])


def set_latent(instance_latents: torch.Tensor) -> torch.Tensor:
    """z_A = Σ_i z_i / ‖Σ_i z_i‖ (§4.3): the latent of what a set of instances shares."""
    return F.normalize(instance_latents.sum(0), dim=0)


def class_latents(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  classes: int = NUM_CLASSES) -> torch.Tensor:
    """(classes, dz): the set latent of each class's images."""
    z = latents(encoder, images)
    return torch.stack([set_latent(z[labels == y]) for y in range(classes)])


def joint_score(energy: SphericalEnergyNet, encoder: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> -s(x) of eq. 14, s(x) = ½‖f(x)‖² − β g(f/‖f‖)ᵀ h(x)/‖h(x)‖ (higher: more in-distribution)."""
    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return -energy.joint(x, F.normalize(encoder(x), dim=1))
    return score


Sampler = Callable[[ConditionalEnergy, int, str], torch.Tensor]


def conditional_accuracy(energy: SphericalEnergyNet, set_latents: torch.Tensor, sample: Sampler, per_class: int) -> dict:
    """Samples of E(x | z_y) for each class y, judged by the digits classifier (§4.3, Figure 3c):
    ``conditional_accuracy`` (the fraction predicted as their condition's class; 0.1 is chance) and
    ``conditional_confusion`` (row y: the predicted-class frequencies of the samples for class y).
    ``sample(energy, n, label)`` draws n chains of an energy with randomness labelled ``label``."""
    classifier = load_classifier()
    rows = []
    for y, z in enumerate(set_latents):
        predicted = classifier_logits(sample(ConditionalEnergy(energy, z), per_class, f"class{y}"), classifier).argmax(1)
        rows.append(torch.bincount(predicted, minlength=NUM_CLASSES).double() / per_class)
    confusion = torch.stack(rows)
    return {"conditional_accuracy": float(confusion.diagonal().mean()),
            "conditional_confusion": [[round(float(p), 4) for p in row] for row in confusion]}


def composition_precision(energy: SphericalEnergyNet, encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          sample: Sampler, per_triple: int) -> dict:
    """Compositional sampling (§4.4, eq. 15) on digits: for each triple (a, b, c), the set latents
    of classes {a, b} and {b, c}, composed, should give samples of the shared class b.
    ``composed_precision``: the fraction of composed samples predicted as b; ``single_precision``:
    the same for samples of {a, b} alone (about 1/2 when that condition works), so composition
    helps when the first is the larger."""
    z = latents(encoder, images)
    classifier = load_classifier()
    composed, single = [], []
    for a, b, c in COMPOSED_TRIPLES:
        first = set_latent(z[(labels == a) | (labels == b)])
        second = set_latent(z[(labels == b) | (labels == c)])
        for conditions, out, label in ((torch.stack([first, second]), composed, "composed"), (first, single, "single")):
            x = sample(ConditionalEnergy(energy, conditions), per_triple, f"{label}{a}{b}{c}")
            out.append(float((classifier_logits(x, classifier).argmax(1) == b).double().mean()))
    return {"composed_precision": sum(composed) / len(composed), "single_precision": sum(single) / len(single)}
