"""The spherical latent-variable EBM of CLEL (Lee et al. 2023, Section 3.2): a backbone f(x) in
R^dz, the joint energy E(x, z) = ½‖f(x)‖² − β g(f(x)/‖f(x)‖)ᵀ z on the unit sphere (eq. 10) and
its marginal E(x) = ½‖f(x)‖² + const (eq. 11); the nodes that expose f, g and both energies."""

from __future__ import annotations

from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ebmgraph.nodes.config_checks import at_least_one
from ebmgraph.nodes.energies import ConvEnergyConfig, check_image_size, conv_body
from ebmgraph.nodes.node import ModelCall, Node
from ebmgraph.nodes.ports import ENERGY, SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.registry import MODELS, NODES, ModelType

Projection = Literal["mlp", "linear", "identity"]


class SphericalEnergyNet(nn.Module):
    """``forward(x)`` is the marginal energy ½‖f(x)‖² (so every kernel and energy node takes it);
    ``direction`` is g(f/‖f‖)/‖g(f/‖f‖)‖, the mode of p(z|x) on the sphere; ``joint`` is eq. 10."""

    def __init__(self, input_shape: tuple[int, ...], backbone: nn.Module, projector: nn.Module, beta: float):
        super().__init__()
        self.input_shape = torch.Size(input_shape)
        self.backbone = backbone
        self.projector = projector
        self.beta = beta
        self.latent_shape = (backbone[-1].out_features,)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (B, dz)."""
        if x.dim() < 1 or x.shape[1:] != self.input_shape:
            raise ValueError(f"expected samples of shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"found {tuple(x.shape)}")
        return self.backbone(x)

    def direction(self, features: torch.Tensor) -> torch.Tensor:
        """g(f/‖f‖), l2-normalized (§3.2: g maps the sphere to the sphere)."""
        return F.normalize(self.projector(F.normalize(features, dim=1)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.features(x).pow(2).sum(1)

    def joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """E(x, z) of eq. 10 for unit latents ``z``."""
        f = self.features(x)
        return 0.5 * f.pow(2).sum(1) - self.beta * (self.direction(f) * z).sum(1)


@attrs.define
class SphericalEnergyConfig(ConvEnergyConfig):
    """The convolutional backbone's keys are conv_energy's (its scalar head replaced); then the
    2-layer MLP head ``[head_hidden, latent_dim]`` of f (Table 8's ``MLP(256, 2048, 128)``), the
    directional projector g (``mlp``: two bias-free linear layers of width ``projection_hidden``
    with a leaky ReLU between, appendix B; ``linear``; ``identity``: no g, Table 5 (d)) and β."""

    latent_dim: int = 32
    head_hidden: int = 256
    projection: Projection = "mlp"
    projection_hidden: int = 256
    beta: float = 0.01
    pooling: Literal["sum", "mean"] = "mean"

    def problems(self) -> list[tuple[str, str]]:
        out = super().problems()
        out += at_least_one(self, "latent_dim", "head_hidden", "projection_hidden")
        if self.beta < 0:
            out.append(("beta", f"must be >= 0, found {self.beta}"))
        return out


def projector(config: SphericalEnergyConfig) -> nn.Module:
    """g of §3.2: bias-free, so positively homogeneous with the leaky ReLU: g(f/‖f‖) = g(f)/‖f‖."""
    dim = config.latent_dim
    if config.projection == "identity":
        return nn.Identity()
    if config.projection == "linear":
        return nn.Linear(dim, dim, bias=False)
    return nn.Sequential(nn.Linear(dim, config.projection_hidden, bias=False), nn.LeakyReLU(0.2),
                         nn.Linear(config.projection_hidden, dim, bias=False))


@MODELS.register
class SphericalEnergy(ModelType):
    """CLEL's spherical latent-variable energy (eq. 10-11) on (C, H, W) images: conv_energy's ResNet
    up to the pooling over positions, a 2-layer leaky-ReLU MLP to f(x) in R^latent_dim, and the
    projector g. As an energy it is the marginal ½‖f(x)‖²; the ``spherical_latents`` and
    ``joint_energy`` nodes expose f, g(f/‖f‖) and E(x, z)."""

    type_name = "spherical_energy"
    role = "energy"
    Config = SphericalEnergyConfig

    @classmethod
    def build(cls, config: SphericalEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        check_image_size(cls.type_name, input_shape, config.downsamplings)
        body = conv_body(config, input_shape[0])
        width = body[-1].in_features
        head = [nn.Linear(width, config.head_hidden), nn.LeakyReLU(0.2), nn.Linear(config.head_hidden, config.latent_dim)]
        return SphericalEnergyNet(input_shape, nn.Sequential(*body[:-1], *head), projector(config), config.beta)


def spherical_model(node: Node, port: str = "energy") -> SphericalEnergyNet:
    """The spherical energy bound to ``port``, else a ShapeError naming the port."""
    model = node.models[port]
    if not isinstance(model, SphericalEnergyNet):
        raise ShapeError(port, f"needs a spherical_energy model (E(x, z) of CLEL eq. 10), found {type(model).__name__}")
    return model


def latent_value(node: ModelCall, x: Value) -> Value:
    """The (B, dz) latents of the spherical energy bound to ``energy`` for samples ``x``."""
    model = spherical_model(node)
    node.check_energy_input("x", x)
    return Value(SAMPLE, (x.shape[0], *model.latent_shape))


@NODES.register
class SphericalLatents(ModelCall):
    """One pass of the spherical energy over ``x``: the marginal energy ½‖f(x)‖² (eq. 11), f(x),
    and the direction g(f/‖f‖) (the mode of p(z|x), §3.3), once differentiable (``direction``, for
    the alignment term of eq. 12) and once as a constant (``latent``: z~ = sg(g(f(x~)/‖f(x~)‖)),
    Algorithm 1 line 6, the extra negatives of eq. 13)."""

    type_name = "spherical_latents"
    inputs = (Port("energy", model_ref("energy"), "a spherical_energy model"),
              Port("x", SAMPLE, "the samples"))
    outputs = (Port("energy", ENERGY, "the marginal energy ½‖f(x)‖², shape (batch,)"),
               Port("features", SAMPLE, "f(x), shape (batch, latent_dim)"),
               Port("direction", SAMPLE, "g(f/‖f‖) on the unit sphere, differentiable"),
               Port("latent", SAMPLE, "g(f/‖f‖) as a constant (stop-gradient)", stop_gradient=True))

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        latent = latent_value(self, inputs["x"])
        return {"energy": Value(ENERGY, (inputs["x"].shape[0],)), "features": latent, "direction": latent,
                "latent": latent}

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.models["energy"]
        f = model.features(x)
        direction = model.direction(f)
        return {"energy": 0.5 * f.pow(2).sum(1), "features": f, "direction": direction, "latent": direction}


@NODES.register
class JointEnergy(ModelCall):
    """E(x, z) = ½‖f(x)‖² − β g(f/‖f‖)ᵀ z of eq. 10, for samples and unit latents (instance- or
    set-conditional energies, §4.3)."""

    type_name = "joint_energy"
    inputs = (Port("energy", model_ref("energy"), "a spherical_energy model"),
              Port("x", SAMPLE, "the samples"), Port("z", SAMPLE, "their latents on the unit sphere"))
    outputs = (Port("energy", ENERGY, "E(x, z), shape (batch,)"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        latent = latent_value(self, inputs["x"])
        if tuple(inputs["z"].shape) != tuple(latent.shape):
            raise ShapeError("z", f"needs one latent of shape {tuple(latent.shape[1:])} per sample, "
                                  f"found shape {tuple(inputs['z'].shape)}")
        return {"energy": Value(ENERGY, (inputs["x"].shape[0],))}

    def __call__(self, ctx, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"energy": self.models["energy"].joint(x, z)}

