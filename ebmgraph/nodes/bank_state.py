"""What a replay bank holds, the one schema its checkpoints, reports and evaluation read."""

from __future__ import annotations

import attrs
import torch

_TENSOR = {"tensor": True}


@attrs.define
class BankState:
    """A bank's ``storage`` (capacity, *shape) in its storage dtype, the ``age`` of each slot (the
    step it was last written) and, for a bank with a generator, the ``latents`` (capacity, *latent
    shape, float32) paired with the stored samples; all None before the bank's first read (the
    latents always for a bank without a generator). Its counters: how
    many slots are filled (``size``, the first ones), items ever offered to a reservoir (``seen``),
    the next FIFO slot (``pointer``) and draws replaced by fresh init samples (``reinit_count``)."""

    storage: torch.Tensor | None = attrs.field(default=None, metadata=_TENSOR)
    age: torch.Tensor | None = attrs.field(default=None, metadata=_TENSOR)
    latents: torch.Tensor | None = attrs.field(default=None, metadata=_TENSOR)
    size: int = attrs.field(default=0, converter=int)
    seen: int = attrs.field(default=0, converter=int)
    pointer: int = attrs.field(default=0, converter=int)
    reinit_count: int = attrs.field(default=0, converter=int)

    @staticmethod
    def tensor_fields() -> tuple[attrs.Attribute, ...]:
        return tuple(f for f in attrs.fields(BankState) if f.metadata.get("tensor"))

    @staticmethod
    def counter_fields() -> tuple[attrs.Attribute, ...]:
        return tuple(f for f in attrs.fields(BankState) if not f.metadata.get("tensor"))

    @property
    def dtype(self) -> str | None:
        """The storage dtype's name ("float32", "bfloat16", ...), None without storage."""
        return None if self.storage is None else str(self.storage.dtype).removeprefix("torch.")

    def counters(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in self.counter_fields()}

    def to(self, device: torch.device | str) -> BankState:
        """This state with its tensors on ``device``."""
        tensors = {f.name: getattr(self, f.name) for f in self.tensor_fields()}
        return attrs.evolve(self, **{name: t.to(device) for name, t in tensors.items() if t is not None})

    def stored(self) -> torch.Tensor:
        """The stored samples (the filled slots), as float."""
        return self._filled(self.storage).float()

    def stored_latents(self) -> torch.Tensor:
        """The latents paired with the stored samples."""
        if self.latents is None:
            raise ValueError("the bank pairs no latents with its samples (it has no generator)")
        return self.latents[:self.size]

    def stored_age(self) -> torch.Tensor:
        """The age of each stored sample."""
        return self._filled(self.age)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` distinct stored samples (all of them if there are fewer), as float, in random order."""
        stored = self._filled(self.storage)
        index = torch.randperm(self.size, generator=generator, device=stored.device)[:n]
        return stored[index].float()

    def _filled(self, tensor: torch.Tensor | None) -> torch.Tensor:
        if tensor is None:
            raise ValueError("the bank holds no samples yet (it has never been read)")
        return tensor[:self.size]
