"""The losses CLEL adds to contrastive divergence (Lee et al. 2023, §3.3): the NT-Xent loss of
the latent encoder with the EBM's latents as extra negatives (eq. 7-8, 13), and the alignment
term −β g(f(x)/‖f(x)‖)ᵀ z of the joint energy on data (eq. 10, 12)."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from ebmgraph.nodes.node import LossNode
from ebmgraph.nodes.ports import LOSS, SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.registry import NODES
from ebmgraph.nodes.spherical import spherical_model


@attrs.define
class NTXentConfig:
    temperature: float = 0.2
    weight: float = 1.0

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.temperature > 0 else [("temperature", f"must be > 0, found {self.temperature}")]


def nt_xent(views: torch.Tensor, negatives: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Eq. 13: the mean over the 2n views of L_NT-Xent (eq. 8), where the rows i and i + n of
    ``views`` are the two views of sample i, every other view and every row of ``negatives`` is a
    negative, and similarities are cosines divided by the temperature."""
    z = F.normalize(views, dim=1)
    keys = z if negatives is None else torch.cat([z, F.normalize(negatives, dim=1)])
    logits = z @ keys.T / temperature
    n = len(z) // 2
    logits[:, :len(z)].fill_diagonal_(float("-inf"))
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partners)


@NODES.register
class NTXent(LossNode):
    """SimCLR's loss on the two augmented views of a batch (eq. 7-8) with optional extra negatives
    (CLEL eq. 13: the EBM's latents z~ of its samples): ``weight * mean_i,j L_NT-Xent(z_j(i),
    z_3-j(i), negatives; temperature)``. ``views`` holds view 1 of the n samples, then view 2."""

    type_name = "nt_xent"
    Config = NTXentConfig
    inputs = (Port("views", SAMPLE, "latents of both views, shape (2n, dz): view 1 of each sample, then view 2"),
              Port("negatives", SAMPLE, "extra negatives, shape (m, dz) (default: none)", optional=True))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        views = inputs["views"].shape
        if len(views) != 2 or views[0] % 2:
            raise ShapeError("views", f"needs latents of shape (2n, dz) (two views per sample), found {tuple(views)}")
        if "negatives" in inputs and tuple(inputs["negatives"].shape[1:]) != tuple(views[1:]):
            raise ShapeError("negatives", f"needs latents of size {views[1]} like the views, "
                                          f"found shape {tuple(inputs['negatives'].shape)}")
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, views: torch.Tensor, negatives: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        value = nt_xent(views, negatives, self.config.temperature)
        ctx.record(self.name, "nt_xent", value)
        return {"loss": self.config.weight * value}


@NODES.register
class LatentAlignment(LossNode):
    """−β mean cos(g(f(x)/‖f(x)‖), z): the part of the joint energy E(x, z) (eq. 10) on data that
    the marginal energy lacks, so that ``contrastive_divergence`` on marginal energies plus this
    loss is eq. 12's first two terms. β is the spherical energy's own; records the mean cosine."""

    type_name = "latent_alignment"
    inputs = (Port("energy", model_ref("energy"), "the spherical_energy whose beta weighs the term"),
              Port("direction", SAMPLE, "g(f/‖f‖) of the data (spherical_latents.direction)"),
              Port("z", SAMPLE, "their latents, z ~ p_data(z|x) (a constant, eq. 9)"))
    outputs = (Port("loss", LOSS, "the scalar loss"),)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        spherical_model(self)
        if tuple(inputs["z"].shape) != tuple(inputs["direction"].shape):
            raise ShapeError("z", f"needs one latent per direction, shape {tuple(inputs['direction'].shape)}, "
                                  f"found {tuple(inputs['z'].shape)}")
        return {"loss": Value(LOSS, ())}

    def __call__(self, ctx, direction: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        similarity = F.cosine_similarity(direction, z, dim=1).mean()
        ctx.record(self.name, "similarity", similarity)
        return {"loss": -self.models["energy"].beta * similarity}
