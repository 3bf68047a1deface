"""Sample banks (replay buffers, persistent chains): delay elements read at the start of a step
and written at its end."""

from __future__ import annotations

from typing import Literal

import attrs
import torch

from ebmgraph.nodes.bank_state import BankState
from ebmgraph.nodes.ports import SAMPLE, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import Bank
from ebmgraph.nodes.registry import NODES

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@attrs.define
class ReplayBankConfig:
    capacity: int = 10000
    write: Literal["back", "fifo", "reservoir"] = "reservoir"
    reinit: float = 0.05
    init: Literal["uniform", "gaussian", "generator"] = "uniform"
    init_low: float = -1.0
    init_high: float = 1.0
    init_std: float = 1.0
    batch_size: int | None = None
    history: int = 0
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.capacity < 1:
            out.append(("capacity", f"must be >= 1, found {self.capacity}"))
        if self.history < 0:
            out.append(("history", f"must be >= 0, found {self.history}"))
        if not 0.0 <= self.reinit <= 1.0:
            out.append(("reinit", f"must be a probability in [0, 1], found {self.reinit}"))
        return out


@NODES.register
class ReplayBank(Bank):
    """A bank of past samples. Reading draws a batch (fresh init samples while the bank holds fewer
    than a batch), each replaced by a fresh init sample with probability ``reinit``. Writing, at the
    end of the step, stores the ``store`` input by the ``write`` rule: ``back`` to the indices drawn (persistent chains;
    the bank starts full of init samples), ``fifo`` over the oldest items, or ``reservoir``
    (a uniform sample of everything ever written, Vitter's algorithm R). ``history`` is a
    second, independent draw of that many stored samples without reinit (e.g. the set B of
    Improved CD's entropy term), empty until the bank holds them.

    With a ``generator`` bound (and ``init: generator``) every stored sample X_i is paired with a
    latent Z_i: fresh samples are pairs (Z, G(Z)), Z ~ N(0, I), from the generator as it is then
    (Hat EBM, Algorithm 1 lines 1-2: a ``back`` bank starts full of them), ``z`` gives the latents
    of the batch drawn, and ``store_z`` is written with ``store``, item for item, to the same slots
    (lines 13-14 and 17 with ``write: back``: exactly the slots drawn)."""

    type_name = "replay_bank"
    Config = ReplayBankConfig
    inputs = (Port("like", SAMPLE, "a sample giving the shape and batch size of draws"),
              Port("generator", model_ref("generator"), "optional generator: pairs each sample with its latent",
                   optional=True),
              Port("store", SAMPLE, "samples stored at the end of the step (a delay edge)", delay=True),
              Port("store_z", SAMPLE, "latents stored with 'store', item for item (a bank with a generator)",
                   optional=True, delay=True))
    outputs = (Port("x", SAMPLE, "the batch drawn at the start of the step"),
               Port("history", SAMPLE, "'history' stored samples drawn at the start of the step"),
               Port("z", SAMPLE, "the latents paired with x (a bank with a generator; else none per sample)"))
    held = {"store": "x", "store_z": "z"}

    def __init__(self, name, config, models, device):
        super().__init__(name, config, models, device)
        self.load_state_dict(BankState())
        self._drawn: torch.Tensor | None = None

    def _batch(self, like_shape: tuple[int, ...]) -> int:
        return self.config.batch_size or like_shape[0]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one paired latent: the generator's; (0,), nothing per sample, without a generator."""
        return tuple(self.models["generator"].latent_shape) if "generator" in self.models else (0,)

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        paired, from_generator = "generator" in self.models, self.config.init == "generator"
        if paired != from_generator:
            raise ShapeError("generator", "a bank pairs its samples with latents exactly when it has a generator "
                                          "and 'init: generator' (its fresh samples are (Z, G(Z))); "
                                          + ("set init: generator" if paired else "bind a generator model"))
        batch, shape = self._batch(inputs["like"].shape), inputs["like"].shape[1:]
        if paired:
            self.check_model_input("generator", "like", Value(SAMPLE, (batch, *self.latent_shape)))
        return {"x": Value(SAMPLE, (batch, *shape)), "history": Value(SAMPLE, (self.config.history, *shape)),
                "z": Value(SAMPLE, (batch, *self.latent_shape))}

    def _init_samples(self, n: int, shape: tuple[int, ...], generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` fresh samples and their latents (None without a generator)."""
        c = self.config
        if c.init == "generator":
            return self._generated(torch.randn((n, *self.latent_shape), generator=generator, device=self.device))
        if c.init == "uniform":
            x = torch.rand((n, *shape), generator=generator, device=self.device) * (c.init_high - c.init_low) + c.init_low
        else:
            x = torch.randn((n, *shape), generator=generator, device=self.device) * c.init_std
        return x, None

    def _generated(self, z: torch.Tensor, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(G(z), z) with the generator as it is now, in chunks, as constants."""
        with torch.no_grad():
            return torch.cat([self.models["generator"](part) for part in z.split(chunk)]), z

    def _allocate(self, shape: tuple[int, ...], ctx) -> None:
        c = self.config
        self.storage = torch.zeros((c.capacity, *shape), dtype=DTYPES[c.dtype], device=self.device)
        self.age = torch.zeros(c.capacity, dtype=torch.long, device=self.device)
        if c.init == "generator":
            self.latents = torch.zeros((c.capacity, *self.latent_shape), device=self.device)
        if c.write == "back":
            x, z = self._init_samples(c.capacity, shape, ctx.generator(f"{self.name}:fill"))
            self.storage.copy_(x)
            if z is not None:
                self.latents.copy_(z)
            self.size = c.capacity

    def __call__(self, ctx, like: torch.Tensor) -> dict[str, torch.Tensor]:
        shape = tuple(like.shape[1:])
        if self.storage is None:
            self._allocate(shape, ctx)
        batch = self._batch(tuple(like.shape))
        generator = ctx.generator(f"{self.name}:read")
        fresh, fresh_z = self._init_samples(batch, shape, generator)
        fresh_z = fresh.new_zeros((batch, *self.latent_shape)) if fresh_z is None else fresh_z
        history = self._history(ctx)
        if self.size < batch:
            self._drawn = None
            ctx.record(self.name, "reinit_fraction", 1.0)
            return {"x": fresh, "history": history, "z": fresh_z}
        index = torch.randperm(self.size, generator=generator, device=self.device)[:batch]
        reinit = torch.rand(batch, generator=generator, device=self.device) < self.config.reinit
        x = _where(reinit, fresh, self.storage[index].to(fresh.dtype))
        z = fresh_z if self.latents is None else _where(reinit, fresh_z, self.latents[index])
        self._drawn = index
        self.reinit_count = self.reinit_count + reinit.sum()
        ctx.record(self.name, "reinit_fraction", reinit.float().mean())
        ctx.record(self.name, "age", (ctx.step - self.age[index]).float().mean())
        return {"x": x, "history": history, "z": z}

    def _history(self, ctx) -> torch.Tensor:
        """``history`` distinct stored samples, or none while the bank holds fewer."""
        n = self.config.history
        if n == 0 or self.size < n:
            return self.storage[:0].float()
        index = torch.randperm(self.size, generator=ctx.generator(f"{self.name}:history"), device=self.device)[:n]
        return self.storage[index].float()

    def write(self, ctx, store: torch.Tensor, store_z: torch.Tensor | None = None) -> None:
        items = store.detach().to(self.storage.dtype)
        positions = self._positions(ctx, len(items))
        keep = positions >= 0
        self.storage[positions[keep]] = items[keep]
        self.age[positions[keep]] = ctx.step
        if self.latents is not None:
            self.latents[positions[keep]] = store_z.detach()[keep].to(self.latents.dtype)

    def _positions(self, ctx, n: int) -> torch.Tensor:
        """Slot of each written item (-1: not stored), by the bank's write rule."""
        c = self.config
        if c.write == "back" and self._drawn is not None:
            return self._drawn[:n]
        if c.write in ("fifo", "back"):
            positions = (self.pointer + torch.arange(n, device=self.device)) % c.capacity
            self.pointer = (self.pointer + n) % c.capacity
            self.size = min(c.capacity, self.size + n)
            return _last_write_wins(positions)
        return self._reservoir_positions(ctx, n)

    def _reservoir_positions(self, ctx, n: int) -> torch.Tensor:
        """Algorithm R: item number t (1-based) fills a free slot, else replaces a uniform slot with
        probability capacity / t."""
        c = self.config
        counts = self.seen + 1 + torch.arange(n, device=self.device)
        uniform = torch.rand(n, generator=ctx.generator(f"{self.name}:write"), device=self.device)
        slot = (uniform * counts).long()
        positions = torch.where(counts <= c.capacity, counts - 1, torch.where(slot < c.capacity, slot, -1))
        self.seen += n
        self.size = min(c.capacity, self.seen)
        return _last_write_wins(positions)

    def state_dict(self) -> BankState:
        return BankState(storage=self.storage, age=self.age, latents=self.latents, size=self.size, seen=self.seen,
                         pointer=self.pointer, reinit_count=self.reinit_count)

    def load_state_dict(self, state: BankState) -> None:
        state = state.to(self.device)
        self.storage, self.age, self.latents = state.storage, state.age, state.latents
        self.size, self.seen, self.pointer = state.size, state.seen, state.pointer
        self.reinit_count = torch.tensor(state.reinit_count, device=self.device)


def _where(mask: torch.Tensor, fresh: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """Per item: ``fresh`` where ``mask`` is set, else ``stored``."""
    return torch.where(mask.view(-1, *([1] * (fresh.dim() - 1))), fresh, stored)


def _last_write_wins(positions: torch.Tensor) -> torch.Tensor:
    """Mark all but the last write to a repeated slot as -1, so a batch write equals sequential writes."""
    order = torch.arange(len(positions), device=positions.device)
    slots, inverse = torch.unique(positions, return_inverse=True)
    last = torch.full((len(slots),), -1, dtype=torch.long, device=positions.device)
    last = last.scatter_reduce(0, inverse, order, reduce="amax")
    return torch.where(last[inverse] == order, positions, torch.full_like(positions, -1))
