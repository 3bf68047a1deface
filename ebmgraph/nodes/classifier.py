"""A classifier read as an energy-based model (JEM: Grathwohl et al. 2019, "Your classifier is
secretly an energy based model and you should treat it like one"), its logits and its
cross-entropy loss.

A classifier f(x) gives logits over the classes. JEM reads them as a joint energy
E(x, y) = -f(x)[y] (eq. 5), so the marginal energy is E(x) = -logsumexp_y f(x)[y] (eq. 6-7) and
p(y|x) is the usual softmax (eq. 4). The model's forward is E(x), so every kernel, energy node
and evaluation works on it unchanged.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.nn import functional

from ebmgraph.nodes.energies import ConvEnergyConfig, EnergyNet, check_image_size, conv_body, maybe_spectral_norm
from ebmgraph.nodes.node import LossNode, ModelCall
from ebmgraph.nodes.ports import LABEL, LOGITS, LOSS, SAMPLE, Port, ShapeError, Value, label_shape, model_ref
from ebmgraph.nodes.registry import MODELS, NODES, ModelType


class ClassifierEnergy(EnergyNet):
    """An EnergyNet whose body gives ``classes`` logits f(x) (at least 2, so EnergyNet's squeeze
    of the last axis leaves them alone). ``forward`` is the marginal energy E(x)."""

    def __init__(self, input_shape: tuple[int, ...], body: nn.Module, classes: int):
        super().__init__(input_shape, body)
        self.classes = classes

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (batch, classes)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = -logsumexp_y f(x)[y] (eq. 7), shape (batch,)."""
        return -torch.logsumexp(self.logits(x), dim=1)

    def class_energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E(x, y) = -f(x)[y] (eq. 5), shape (batch,)."""
        return -self.logits(x).gather(1, y[:, None]).squeeze(1)


@attrs.define
class ConvClassifierConfig(ConvEnergyConfig):
    """``conv_energy``'s keys, plus the number of ``classes``."""

    classes: int = attrs.field(default=10, validator=attrs.validators.ge(2))


@MODELS.register
class ConvClassifier(ModelType):
    """A classifier energy for (C, H, W) images (JEM): the network of ``conv_energy`` (stem,
    residual stages, activation and pooling over positions) with a linear head to ``classes``
    logits f(x). Its energy is E(x) = -logsumexp_y f(x)[y] (eq. 7); ``evaluate_logits`` gives
    f(x) and ``cross_entropy`` trains p(y|x) = softmax f(x) (eq. 4)."""

    type_name = "conv_classifier"
    role = "energy"
    Config = ConvClassifierConfig

    @classmethod
    def build(cls, config: ConvClassifierConfig, input_shape: tuple[int, ...]) -> nn.Module:
        check_image_size(cls.type_name, input_shape, config.downsamplings)
        *features, head = conv_body(config, input_shape[0])
        logits = maybe_spectral_norm(nn.Linear(head.in_features, config.classes), config.spectral_norm)
        return ClassifierEnergy(input_shape, nn.Sequential(*features, logits), config.classes)


@NODES.register
class EvaluateLogits(ModelCall):
    """f(x) of a classifier energy (``conv_classifier``): one logit per class and sample,
    differentiable with respect to the classifier's parameters."""

    type_name = "evaluate_logits"
    inputs = (Port("classifier", model_ref("energy"), "a classifier energy (one with logits, e.g. conv_classifier)"),
              Port("x", SAMPLE, "the samples to classify"))
    outputs = (Port("logits", LOGITS, "f(x), shape (batch, classes)"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        model = self.models["classifier"]
        if not isinstance(model, ClassifierEnergy):
            raise ShapeError("x", f"the model bound to 'classifier' ({type(model).__name__}) has no logits; "
                                  "bind a classifier energy such as conv_classifier")
        batch = self.check_energy_input("x", inputs["x"], model_port="classifier")
        return {"logits": Value(LOGITS, (*batch, model.classes))}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.models["classifier"].logits(x)}


@attrs.define
class CrossEntropyConfig:
    weight: float = 1.0


@NODES.register
class CrossEntropy(LossNode):
    """``weight * mean -log p(y|x)`` with p(y|x) = softmax f(x)[y] (JEM eq. 4): the classifier's
    loss, the log p(y|x) term of log p(x, y) = log p(x) + log p(y|x) (eq. 8). Records the batch's
    ``accuracy``."""

    type_name = "cross_entropy"
    Config = CrossEntropyConfig
    inputs = (Port("logits", LOGITS, "logits f(x), shape (batch, classes)"),
              Port("labels", LABEL, "the class of each sample, shape (batch,)"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        labels, logits = label_shape("labels", inputs["labels"]), inputs["logits"].shape
        if labels != logits[:1]:
            raise ShapeError("labels", f"{labels[0]} labels for {logits[0]} rows of logits")
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        ctx.record(self.name, "accuracy", (logits.argmax(dim=1) == labels).float().mean())
        return {"loss": self.config.weight * functional.cross_entropy(logits, labels)}
