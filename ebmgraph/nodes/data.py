"""Data sources: 2-D toy distributions, scikit-learn digits, CIFAR-10 and user ``.npz`` files.

Every source has an output ``x`` with a batch of samples drawn with the node's own generator,
so a (seed, step) pair always gives the same batch. ``reference(n)`` gives ``n`` fixed training
points and ``test_split()`` the held-out split (``None`` for toys), both on the CPU. Finite data
sets also have an output ``y``: the class labels of the same batch (drawn with the same index, no
extra random numbers), and ``train_labels``/``test_labels`` on the CPU (``None`` without labels).
Toys have no labels.
"""

from __future__ import annotations

import abc
import functools
import inspect
import pickle
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

from ebmgraph.errors import DataError
from ebmgraph.nodes import toys
from ebmgraph.nodes.ports import LABEL, SAMPLE, Port, Value
from ebmgraph.nodes.node import DataSource
from ebmgraph.nodes.registry import NODES


def _batch_size():
    return attrs.field(default=64, validator=attrs.validators.gt(0))


def _reference_generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def fixed_subset(samples: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` of ``samples`` (all if there are fewer), the same ones every time."""
    return samples[torch.randperm(len(samples), generator=_reference_generator())[:n]]


# --- 2-D toys ---

@attrs.define
class ToyConfig:
    batch_size: int = _batch_size()


def _toy_config(toy: type[toys.Toy]) -> type:
    """A toy node's config: ``batch_size``, then the toy's parameters (types, defaults, validators)."""
    fields = {f.name: attrs.field(default=f.default, validator=f.validator, type=f.type)
              for f in attrs.fields(attrs.resolve_types(toy))}
    return attrs.make_class(f"{toy.__name__}Config", fields, bases=(ToyConfig,), slots=True)


class _Toy(DataSource):
    """A 2-D toy distribution; fresh points are drawn every step. A subclass names its ``toy``
    class, which gives the node its type name, its doc and its config: ``batch_size``, then the
    toy's parameters."""

    outputs = (Port("x", SAMPLE, "a batch of 2-D points"),)
    sample_shape: ClassVar[tuple[int, ...]] = (2,)
    toy: ClassVar[type[toys.Toy]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.type_name, cls.Config = cls.toy.name, _toy_config(cls.toy)

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.toy.__doc__)

    def __init__(self, name, config, models, device):
        super().__init__(name, config, models, device)
        self.distribution = self.toy(**{f.name: getattr(config, f.name) for f in attrs.fields(self.toy)})

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        return {"x": Value(SAMPLE, (self.config.batch_size, *self.sample_shape))}

    def __call__(self, ctx) -> dict[str, torch.Tensor]:
        return {"x": self.distribution.sample(self.config.batch_size, ctx.generator(self.name)).to(self.device)}

    def reference(self, n: int) -> torch.Tensor:
        return self.distribution.sample(n, _reference_generator())

    def test_split(self) -> None:
        return None


@NODES.register
class EightGaussians(_Toy):
    toy = toys.EightGaussians


@NODES.register
class TwoSpirals(_Toy):
    toy = toys.TwoSpirals


@NODES.register
class Checkerboard(_Toy):
    toy = toys.Checkerboard


@NODES.register
class Rings(_Toy):
    toy = toys.Rings


@NODES.register
class Moons(_Toy):
    toy = toys.Moons


@NODES.register
class Pinwheel(_Toy):
    toy = toys.Pinwheel


# --- finite data sets ---

def _labels_port(doc: str) -> Port:
    return Port("y", LABEL, f"the class labels of the batch x, int64 of shape (batch,){doc}")


class _Dataset(DataSource):
    """A finite data set: each step draws ``batch_size`` distinct training samples and their labels.

    Subclasses implement ``load`` (CPU tensors as stored; it sets ``train_labels`` and
    ``test_labels`` where the data have labels) and may override ``to_samples`` (stored form ->
    float32 samples), so large sets can stay compact on the device. The data are read when the
    node is built (once per graph: the engine builds each node once), so a bad file is a DataError
    naming it before any step runs. Without labels, ``infer`` gives ``y`` no shape, so a graph
    that wires it fails its check (``ports.label_shape``).
    """

    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    def __init__(self, name, config, models, device):
        super().__init__(name, config, models, device)
        self._train, self._test = self.load()
        if len(self._train) < config.batch_size:
            raise DataError(f"{self.source()} has {len(self._train)} training samples, "
                            f"fewer than batch_size {config.batch_size}")
        self.sample_shape: tuple[int, ...] = tuple(self._train.shape[1:])
        self._train_on_device = self._train.to(device)
        self._labels_on_device = None if self.train_labels is None else self.train_labels.to(device, torch.int64)

    @abc.abstractmethod
    def load(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training and test splits (test may be None), batch first, on the CPU."""

    @abc.abstractmethod
    def source(self) -> str:
        """Where the data come from, as named in error messages."""

    def to_samples(self, stored: torch.Tensor) -> torch.Tensor:
        return stored

    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        batch = self.config.batch_size
        return {"x": Value(SAMPLE, (batch, *self.sample_shape)),
                "y": Value(LABEL, None if self.train_labels is None else (batch,))}

    def __call__(self, ctx) -> dict[str, torch.Tensor]:
        """A batch drawn without replacement; rank r of W data-parallel ranks takes the r-th share
        of one global draw of W * batch_size (the same permutation on every rank)."""
        generator = ctx.generator(self.name, shared=True)
        index = torch.randperm(len(self._train), generator=generator, device=generator.device)
        share = self.config.batch_size
        index = index[ctx.rank * share: (ctx.rank + 1) * share].to(self.device)
        batch = {"x": self.to_samples(self._train_on_device[index])}
        return batch if self._labels_on_device is None else {**batch, "y": self._labels_on_device[index]}

    def reference(self, n: int) -> torch.Tensor:
        """``n`` fixed training samples (all of them if there are fewer)."""
        return self.to_samples(fixed_subset(self._train, n))

    def test_split(self) -> torch.Tensor | None:
        return None if self._test is None else self.to_samples(self._test)

    def train_split(self) -> torch.Tensor:
        return self.to_samples(self._train)


@functools.cache
def bundled_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (train images, train labels, test images, test labels), images
    (N, 1, 8, 8) in [-1, 1], with the fixed stratified split; read once per process."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images[:, None] / 8 - 1).astype(np.float32)
    train, test, train_labels, test_labels = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target)
    return tuple(torch.from_numpy(a) for a in (train, train_labels, test, test_labels))


@attrs.define
class DigitsConfig:
    batch_size: int = _batch_size()


@NODES.register
class Digits(_Dataset):
    """scikit-learn's 8x8 handwritten digits (1797 images, shape (1, 8, 8), values in [-1, 1]),
    with a fixed stratified split: 1437 training and 360 test images."""

    type_name = "digits"
    Config = DigitsConfig
    outputs = (Port("x", SAMPLE, "a batch of 8x8 digit images in [-1, 1]"), _labels_port(", digits 0-9"))

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        train, self.train_labels, test, self.test_labels = bundled_digits()
        return train, test

    def source(self) -> str:
        return "the digits data set"


@attrs.define
class NpzConfig:
    path: str
    key: str = "x"
    batch_size: int = _batch_size()
    test_key: str | None = None
    label_key: str = "y"
    test_label_key: str | None = None


@NODES.register
class Npz(_Dataset):
    """Samples stored in a numpy ``.npz`` file: array ``key`` (samples along the first axis) for
    training and optionally ``test_key`` for testing, used as stored (as float32). Integer class
    labels, one per sample, come from array ``label_key`` (no labels if the file has no such
    array, or if it is the samples' ``key``) and ``test_label_key`` (with ``test_key``)."""

    type_name = "npz"
    Config = NpzConfig
    outputs = (Port("x", SAMPLE, "a batch of samples from the file"),
               _labels_port(" (only if the file has the array 'label_key')"))

    def load(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        if c.test_label_key is not None and c.test_key is None:
            raise DataError(f"{self.source()}: test_label_key '{c.test_label_key}' needs test_key")
        with self._open() as archive:
            train = self._read(archive, c.key)
            test = None if c.test_key is None else self._read(archive, c.test_key)
            if c.label_key in archive.files and c.label_key != c.key:
                self.train_labels = self._read_labels(archive, c.label_key, len(train))
            if c.test_label_key is not None:
                self.test_labels = self._read_labels(archive, c.test_label_key, len(test))
        if test is not None and test.shape[1:] != train.shape[1:]:
            raise DataError(f"{self.source()}: samples of '{c.test_key}' have shape {test.shape[1:]}, "
                            f"but those of '{c.key}' have shape {train.shape[1:]}")
        return torch.from_numpy(train), None if test is None else torch.from_numpy(test)

    def source(self) -> str:
        return f"data file '{self.config.path}'"

    def _open(self) -> np.lib.npyio.NpzFile:
        if not Path(self.config.path).is_file():
            raise DataError(f"{self.source()} not found")
        try:
            archive = np.load(self.config.path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"{self.source()} cannot be read: {error}") from None
        if isinstance(archive, np.ndarray):
            raise DataError(f"{self.source()} is a single .npy array, not an .npz archive (save it with numpy.savez)")
        return archive

    def _read(self, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
        array, where = self._array(archive, key)
        if array.dtype.kind not in "biuf":
            raise DataError(f"{where} is not numeric (dtype {array.dtype})")
        if array.size == 0:
            raise DataError(f"{where} is empty")
        if array.ndim < 2:
            raise DataError(f"{where} has shape {array.shape}; expected samples along the first axis, shape (N, ...)")
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise DataError(f"{where} contains NaN or infinite values")
        return array

    def _read_labels(self, archive: np.lib.npyio.NpzFile, key: str, n: int) -> torch.Tensor:
        """Array ``key`` as int64 class labels for ``n`` samples: integers >= 0, shape (n,)."""
        array, where = self._array(archive, key)
        if array.dtype.kind not in "iu":
            raise DataError(f"{where} holds labels, which must be integers (found dtype {array.dtype})")
        if array.shape != (n,):
            raise DataError(f"{where} has shape {array.shape}; expected one label per sample, shape ({n},)")
        if array.min() < 0:
            raise DataError(f"{where} holds a negative label ({array.min()}); labels are class indices 0, 1, ...")
        return torch.from_numpy(array.astype(np.int64))

    def _array(self, archive: np.lib.npyio.NpzFile, key: str) -> tuple[np.ndarray, str]:
        """Array ``key`` of the archive and how error messages name it."""
        if key not in archive.files:
            raise DataError(f"{self.source()} has no array '{key}' (it has: {', '.join(archive.files) or 'none'})")
        where = f"array '{key}' in {self.source()}"
        try:
            return archive[key], where
        except ValueError:
            raise DataError(f"{where} is not numeric (it holds Python objects)") from None


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's python batches hold (dicts, lists, bytes, numbers and numpy
    arrays): a crafted batch cannot name any other class or function, so it cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global '{module}.{name}': a CIFAR-10 batch holds only arrays, "
                                         "lists, bytes and numbers")
        return super().find_class(module, name)


def _cifar10_hint(root: str) -> str:
    return (f"download CIFAR-10 'python version' from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
            f"to '{root}' (the folder holds data_batch_1 ... data_batch_5 and test_batch)")


@attrs.define
class Cifar10Config:
    root: str = "data/cifar-10-batches-py"
    batch_size: int = _batch_size()


@NODES.register
class Cifar10(_Dataset):
    """CIFAR-10 images (shape (3, 32, 32), values in [-1, 1]) from the 'python version' batches in
    ``root``: 50000 training and 10000 test images."""

    type_name = "cifar10"
    Config = Cifar10Config
    outputs = (Port("x", SAMPLE, "a batch of 32x32 color images in [-1, 1]"), _labels_port(", classes 0-9"))

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        root = Path(self.config.root)
        if not root.is_dir():
            raise DataError(f"CIFAR-10 folder '{root}' not found: {_cifar10_hint(self.config.root)}")
        train = [self._read_batch(root / f"data_batch_{i}") for i in range(1, 6)]
        test_images, self.test_labels = self._read_batch(root / "test_batch")
        self.train_labels = torch.cat([labels for _, labels in train])
        return torch.cat([images for images, _ in train]), test_images

    def source(self) -> str:
        return f"CIFAR-10 folder '{self.config.root}'"

    def to_samples(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.float() / 127.5 - 1

    def _read_batch(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """One pickled batch: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
        if not path.is_file():
            raise DataError(f"CIFAR-10 file '{path}' not found: {_cifar10_hint(self.config.root)}")
        try:
            with path.open("rb") as file:
                batch = _BatchUnpickler(file, encoding="bytes").load()
            images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"CIFAR-10 file '{path}' cannot be read ({type(error).__name__}: {error}); "
                            f"it may be damaged: {_cifar10_hint(self.config.root)}") from None
        return torch.from_numpy(images), torch.from_numpy(labels)
