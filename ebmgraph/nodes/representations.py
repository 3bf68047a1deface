"""Representation encoders h: x -> R^dz learned by contrastive learning (CLEL's latent encoder,
Lee et al. 2023, §3.1), and the node that maps samples to their latents on the unit sphere (eq. 9)."""

from __future__ import annotations

from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.energies import Activation, activation, group_norm, image_size
from ebmgraph.nodes.node import ModelCall
from ebmgraph.nodes.ports import SAMPLE, Port, Value, model_ref
from ebmgraph.nodes.registry import MODELS, NODES, ModelType

Norm = Literal["none", "group"]


def _norm(kind: Norm, width: int) -> nn.Module:
    return group_norm(width) if kind == "group" else nn.Identity()


class BasicBlock(nn.Module):
    """He et al.'s basic residual block: two 3x3 convs with normalization, the first with
    ``stride``, a 1x1 projection shortcut when the shape changes, the activation after the sum."""

    def __init__(self, width_in: int, width_out: int, stride: int, norm: Norm, act: str):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(width_in, width_out, 3, stride, 1, bias=norm == "none"), _norm(norm, width_out), activation(act),
            nn.Conv2d(width_out, width_out, 3, 1, 1, bias=norm == "none"), _norm(norm, width_out))
        self.shortcut = (nn.Identity() if stride == 1 and width_in == width_out else
                         nn.Sequential(nn.Conv2d(width_in, width_out, 1, stride, bias=norm == "none"),
                                       _norm(norm, width_out)))
        self.activation = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.residual(x) + self.shortcut(x))


@attrs.define
class ResNetRepresentationConfig:
    """The CIFAR ResNet-18 of appendix B is ``widths: [64, 128, 256, 512]``, ``blocks_per_stage:
    2``, then the 2-layer MLP head ``[head_hidden, latent_dim]``. ``norm: group`` puts group norm
    where ResNet-18 has batch norm (as many parameters, and an image's latent does not depend on
    the rest of its batch)."""

    widths: list[int] = attrs.Factory(lambda: [16, 32])
    blocks_per_stage: int = 1
    norm: Norm = "none"
    activation: Activation = "relu"
    head_hidden: int = 128
    latent_dim: int = 32

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.widths else [("widths", "give at least one stage width")]
        return out + at_least_one(self, "widths", "blocks_per_stage", "head_hidden", "latent_dim")


@MODELS.register
class ResNetRepresentation(ModelType):
    """A CIFAR-style ResNet (3x3 stem of width ``widths[0]``, no max pooling; each later stage
    halves the resolution with a stride-2 first block), global average pooling and a 2-layer MLP
    head to ``latent_dim``: the representation h(x) of a contrastive encoder."""

    type_name = "resnet_representation"
    role = "representation"
    Config = ResNetRepresentationConfig

    @classmethod
    def build(cls, config: ResNetRepresentationConfig, input_shape: tuple[int, ...]) -> nn.Module:
        channels, _, _ = image_size(cls.type_name, input_shape, len(config.widths) - 1)
        width = config.widths[0]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1, bias=config.norm == "none"),
                                   _norm(config.norm, width), activation(config.activation)]
        for stage, stage_width in enumerate(config.widths):
            for block in range(config.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(width, stage_width, stride, config.norm, config.activation))
                width = stage_width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, config.head_hidden),
                   activation(config.activation), nn.Linear(config.head_hidden, config.latent_dim)]
        network = nn.Sequential(*layers)
        network.latent_shape = (config.latent_dim,)
        return network


@NODES.register
class Represent(ModelCall):
    """z = h(x)/‖h(x)‖: latents on the unit sphere, once differentiable (``z``, for the contrastive
    loss, eq. 13) and once as a constant (``latent``: Algorithm 1 line 5's sg(·), the data latent
    z ~ p_data(z|x) of eq. 9 when ``x`` is an augmented view t(x))."""

    type_name = "represent"
    inputs = (Port("encoder", model_ref("representation"), "the representation encoder h"),
              Port("x", SAMPLE, "samples to encode"))
    outputs = (Port("z", SAMPLE, "h(x)/‖h(x)‖, differentiable"),
               Port("latent", SAMPLE, "h(x)/‖h(x)‖ as a constant (stop-gradient)", stop_gradient=True))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        shape = self.check_model_input("encoder", "x", inputs["x"])
        return {"z": Value(SAMPLE, shape), "latent": Value(SAMPLE, shape)}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = F.normalize(self.models["encoder"](x), dim=1)
        return {"z": z, "latent": z}
