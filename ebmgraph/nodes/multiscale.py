"""Multi-scale energy (Improved CD, Section 2.4 and appendix B.1): the sum of energies of the image
at full, half and quarter resolution."""

from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from ebmgraph.nodes.energies import ConvEnergyConfig, EnergyNet, check_image_size, conv_body
from ebmgraph.nodes.registry import MODELS, ModelType


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Anti-aliased 2x downsampling: a 3x3 box filter with stride 2 (the mean of the pixels under
    it at borders)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class ScaleSum(nn.Module):
    """``sum_s nets[s](downsample^s(x))``, shape (B, 1)."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = 0
        for net in self.nets:
            total = total + net(x)
            x = downsample(x)
        return total


@attrs.define
class MultiscaleEnergyConfig(ConvEnergyConfig):
    """``conv_energy`` fields for the full-resolution network, and the number of ``scales``
    (1: full resolution only; 3: full, half and quarter)."""

    scales: int = 3

    def problems(self) -> list[tuple[str, str]]:
        out = super().problems()
        if not 1 <= self.scales <= self.downsamplings + 1:
            out.append(("scales", (f"must be between 1 and {self.downsamplings + 1}, the downsampling stages + 1 "
                                   f"(the network at scale s drops the first s down-sampled residual blocks), "
                                   f"found {self.scales}")))
        return out


@MODELS.register
class MultiscaleEnergy(ModelType):
    """E(x) = sum over s < ``scales`` of E_s(x downsampled s times). E_0 is the ``conv_energy`` the
    config describes; E_s is the same network with its first s down-sampled residual blocks
    removed (appendix B.1): of each of the first s downsampling stages, the last residual block
    and its 2x pooling (Table 5's "ResBlock Down"); the stage's other blocks and its attention
    stay. Every scale thus ends at the same feature resolution."""

    type_name = "multiscale_energy"
    role = "energy"
    Config = MultiscaleEnergyConfig

    @classmethod
    def build(cls, config: MultiscaleEnergyConfig, input_shape: tuple[int, ...]) -> nn.Module:
        check_image_size(cls.type_name, input_shape, config.downsamplings)
        nets = [conv_body(config, input_shape[0], removed=scale) for scale in range(config.scales)]
        return EnergyNet(input_shape, ScaleSum(nets))
