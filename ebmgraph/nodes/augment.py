"""Data-augmentation transitions (Improved CD, Section 2.3): random resized crop, horizontal flip,
color jitter, grayscale and gaussian blur (kornia), applied to chain states to jump between
related images."""

from __future__ import annotations

import attrs
import kornia.augmentation as K
import torch

from ebmgraph.nodes.ports import SAMPLE, Port, ShapeError, Value
from ebmgraph.nodes.node import Augmentation
from ebmgraph.nodes.registry import NODES


@attrs.define
class AugmentConfig:
    """``crop_scale``: area range of the random resized crop (null: no crop); ``flip``: horizontal
    flip with probability 1/2; ``color_strength`` s: SimCLR color jitter (brightness, contrast,
    saturation 0.8 s, hue 0.2 s; brightness and contrast only for one channel) with probability
    0.8, 0 for none; ``grayscale``: probability of grayscale (three channels only); ``blur_kernel``:
    odd size of a gaussian blur with sigma ~ U(0.1, 2) applied with probability 1/2 (null: none);
    ``value_range``: the range of pixel values, kept."""

    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    flip: bool = True
    color_strength: float = 1.0
    grayscale: float = 0.2
    blur_kernel: int | None = None
    value_range: tuple[float, float] = (-1.0, 1.0)

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.crop_scale is not None and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            out.append(("crop_scale", f"expected [low, high] with 0 < low <= high <= 1, found {list(self.crop_scale)}"))
        if self.color_strength < 0:
            out.append(("color_strength", f"must be >= 0, found {self.color_strength}"))
        if not 0 <= self.grayscale <= 1:
            out.append(("grayscale", f"must be a probability in [0, 1], found {self.grayscale}"))
        if self.blur_kernel is not None and (self.blur_kernel < 3 or self.blur_kernel % 2 == 0):
            out.append(("blur_kernel", f"must be an odd size >= 3, found {self.blur_kernel}"))
        if self.value_range[0] >= self.value_range[1]:
            out.append(("value_range", f"expected [low, high] with low < high, found {list(self.value_range)}"))
        return out


def augmentation_pipeline(config: AugmentConfig, channels: int, size: tuple[int, int]) -> K.AugmentationSequential:
    """The kornia transforms the config asks for, on images with values in [0, 1]."""
    s = config.color_strength
    transforms = []
    if config.crop_scale is not None:
        transforms.append(K.RandomResizedCrop(size, scale=tuple(config.crop_scale)))
    if config.flip:
        transforms.append(K.RandomHorizontalFlip())
    if s > 0:
        color = (0.8 * s, 0.2 * s) if channels == 3 else (0.0, 0.0)
        transforms.append(K.ColorJitter(0.8 * s, 0.8 * s, *color, p=0.8))
    if channels == 3 and config.grayscale > 0:
        transforms.append(K.RandomGrayscale(p=config.grayscale))
    if config.blur_kernel is not None:
        transforms.append(K.RandomGaussianBlur((config.blur_kernel,) * 2, (0.1, 2.0), p=0.5))
    return K.AugmentationSequential(*transforms)


@NODES.register
class Augment(Augmentation):
    """A random augmentation of each image (Algorithm 1, x~0 = D(x~0)): same shape, dtype and value
    range; the randomness comes from the node's own generator, so a seed fixes the output."""

    type_name = "augment"
    Config = AugmentConfig
    inputs = (Port("x", SAMPLE, "images to augment"),)
    outputs = (Port("x", SAMPLE, "the augmented images"),)

    def __init__(self, name, config, models, device):
        super().__init__(name, config, models, device)
        self._pipelines: dict[tuple[int, ...], K.AugmentationSequential] = {}

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        shape = inputs["x"].shape
        if len(shape) != 4 or shape[1] not in (1, 3):
            raise ShapeError("x", f"augmentations need images of shape (C, H, W) with 1 or 3 channels, "
                                  f"found sample shape {tuple(shape[1:])}")
        return {"x": Value(SAMPLE, shape)}

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` augmented with randomness seeded from ``generator``."""
        key = tuple(x.shape[1:])
        if key not in self._pipelines:
            self._pipelines[key] = augmentation_pipeline(self.config, x.shape[1], tuple(x.shape[2:]))
        low, high = self.config.value_range
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            unit = self._pipelines[key](((x - low) / (high - low)).clamp(0, 1))
        return (unit * (high - low) + low).to(x.dtype).clamp(low, high)

    def __call__(self, ctx, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.augment(x.detach(), ctx.generator(self.name))}
