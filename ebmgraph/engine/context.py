"""Per-step context handed to every node: the step number, node-private generators, diagnostics."""

from __future__ import annotations

import hashlib

import torch

from ebmgraph.errors import DivergenceError


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the graph seed and any labels (node name, step, rank)."""
    digest = hashlib.blake2b(repr((seed,) + parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class StepContext:
    """What a node may use besides its inputs.

    ``generator(name)`` gives the node its own ``torch.Generator`` seeded from (seed, name, step,
    rank, and the repetition of a repeated phase): adding a node never changes another node's
    randomness and resume is exact; ``generator(name, shared=True)`` is the same on every rank
    (each rank takes its share of one draw, e.g. of the batch).
    ``record(name, key, value)`` stores a diagnostic (kept as a tensor; read only when logged);
    ``diagnostics_wanted`` tells nodes whether this step is logged, so diagnostics that cost extra
    work (an energy evaluation at the chains' end) are computed only then. ``compile_mode`` is the
    ``torch.compile`` mode of kernels with ``compile: true`` (``train.compile_mode``).
    """

    def __init__(self, seed: int, step: int, device: torch.device, rank: int = 0, max_abs_energy: float = 1e6,
                 diagnostics_wanted: bool = True, compile_mode: str = "default"):
        self.seed = seed
        self.step = step
        self.device = device
        self.rank = rank
        self.max_abs_energy = max_abs_energy
        self.repeat = 0
        self.diagnostics_wanted = diagnostics_wanted
        self.compile_mode = compile_mode
        self.diagnostics: dict[str, torch.Tensor | float] = {}
        self.histograms: dict[str, torch.Tensor] = {}

    def generator(self, name: str, shared: bool = False) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        labels = (name, self.step, 0 if shared else self.rank) + ((self.repeat,) if self.repeat else ())
        generator.manual_seed(derive_seed(self.seed, *labels))
        return generator

    def record(self, name: str, key: str, value: torch.Tensor | float) -> None:
        self.diagnostics[f"{name}/{key}"] = value.detach() if isinstance(value, torch.Tensor) else value

    def record_histogram(self, name: str, key: str, values: torch.Tensor) -> None:
        """Per-sample values (e.g. energies) for the logs' histograms, kept only on logged steps."""
        if self.diagnostics_wanted:
            self.histograms[f"{name}/{key}"] = values.detach().reshape(-1)

    def check_finite(self, **values: torch.Tensor) -> None:
        """Stop before any parameter moves if a loss or energy is non-finite or beyond ``max_abs_energy``."""
        if not values:
            return
        healthy = torch.stack([(v.detach().abs() <= self.max_abs_energy).all() for v in values.values()])
        if bool(healthy.all()):
            return
        bad = [name for name, ok in zip(values, healthy.tolist()) if not ok]
        details = ", ".join(f"'{name}' ({_summary(values[name])})" for name in bad)
        raise DivergenceError(f"step {self.step + 1}: diverged at node {details}; "
                              f"limit |value| <= {self.max_abs_energy:g} (train.max_abs_energy)",
                              {name: statistics(values[name]) for name in bad})


def statistics(value: torch.Tensor) -> dict:
    """Plain-data statistics of a tensor that went bad: its shape, how many values are NaN or
    infinite, and the range and mean of the finite ones."""
    value = value.detach().double()
    finite = value[torch.isfinite(value)]
    summary = {"shape": list(value.shape), "nan": int(value.isnan().sum()), "inf": int(value.isinf().sum())}
    if finite.numel():
        summary.update(min=finite.min().item(), max=finite.max().item(), mean=finite.mean().item())
    return summary


def _summary(value: torch.Tensor) -> str:
    value = value.detach()
    if not torch.isfinite(value).all():
        return "non-finite values"
    return f"max |value| = {value.abs().max().item():.4g}"
