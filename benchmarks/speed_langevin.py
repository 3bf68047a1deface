"""Langevin chains for benchmarks/speed.py: ebmgraph's kernel (eager and ``compile: true``)
against the eager limit (one forward and one input-backward a step, parameters frozen) and the
naive loop (parameters left requiring grad), on the energies of the shipped graphs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.kernels import Langevin, LangevinConfig

STEP_SIZE, NOISE = 0.01, 0.005
#: name -> (model type, its keys, sample shape): the toy2d MLP, the digits conv energy of the
#: default profiles, and a conv energy on CIFAR-sized images.
ENERGIES = {
    "2-D MLP": ("mlp_energy", {"hidden": 128, "layers": 3, "activation": "swish"}, (2,)),
    "digits conv": ("conv_energy", {"channels": 16, "stages": 2}, (1, 8, 8)),
    "3x32x32 conv": ("conv_energy", {"channels": 32, "stages": 3}, (3, 32, 32)),
}


def build_energy(name: str, device: torch.device, image_size: int | None = None) -> tuple[torch.nn.Module, tuple]:
    """Energy ``name`` (seeded) and its sample shape; ``image_size`` resizes an image energy's input."""
    type_name, keys, shape = ENERGIES[name]
    if image_size is not None:
        shape = (shape[0], image_size, image_size)
    cls = MODELS.get(type_name)
    torch.manual_seed(0)
    with torch.device(device):
        return cls.build(cls.Config(**keys), shape), shape


def limit_chain(energy: torch.nn.Module, x: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The eager limit, by hand: frozen parameters, one forward and one input-backward a step."""
    energy.requires_grad_(False)
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
        x = x - STEP_SIZE * grad + NOISE * torch.randn(x.shape, generator=generator, device=x.device)
    energy.requires_grad_(True)
    return x.detach()


def naive_chain(energy: torch.nn.Module, x: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The loop most reference code writes: the parameters still require grad while sampling."""
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
        x = x - STEP_SIZE * grad + NOISE * torch.randn(x.shape, generator=generator, device=x.device)
    return x.detach()


def kernel_chain(kernel: Langevin, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """ebmgraph's langevin node as a step calls it on an unlogged step."""
    ctx = StepContext(0, 0, device, diagnostics_wanted=False)
    return kernel(ctx, init=x)["x"]


def chains(energy: torch.nn.Module, batch: int, shape: tuple, steps: int, device: torch.device,
           compiled: bool = True) -> dict[str, Callable[[], torch.Tensor]]:
    """Name -> one K-step chain from the same start and noise seed, for each way of running it."""
    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1
    config = LangevinConfig(steps=steps, step_size=STEP_SIZE, noise=NOISE)
    kernel = Langevin("negatives", config, {"energy": energy}, device)
    seeded = (lambda: StepContext(0, 0, device).generator("negatives"))  # the kernel's own noise
    work = {"naive": lambda: naive_chain(energy, x, steps, seeded()),
            "eager limit": lambda: limit_chain(energy, x, steps, seeded()),
            "ebmgraph": partial(kernel_chain, kernel, x, device)}
    if compiled:
        compiled_kernel = Langevin("negatives", LangevinConfig(steps=steps, step_size=STEP_SIZE, noise=NOISE,
                                                               compile=True), {"energy": energy}, device)
        work["ebmgraph, compile: true"] = partial(kernel_chain, compiled_kernel, x, device)
    return work
