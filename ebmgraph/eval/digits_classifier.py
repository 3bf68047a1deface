"""A small convnet classifier for the 8x8 ``digits`` data, trained by ebmgraph itself.

Its penultimate features feed the Fréchet distance (``frechet.py``) and its predictions the mode
coverage (``modes.py``). Training is deterministic (fixed seed, fixed minibatch order, deterministic
algorithms only) and takes a few seconds on a CPU; the weights are cached on disk in the user cache
directory under a name that holds a hash of the training code version, the training data and the
hyper-parameters, so any change to one of them trains a fresh classifier.

Cache directory: ``$EBMGRAPH_CACHE`` if set, else ``$XDG_CACHE_HOME/ebmgraph``, else
``~/.cache/ebmgraph``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ebmgraph.nodes.data import bundled_digits
from ebmgraph.store.atomic import atomic_path

log = logging.getLogger(__name__)

#: Bump whenever the architecture or the training procedure changes: it is part of the cache key.
TRAINING_VERSION = "digits-convnet-v1"

#: Hyper-parameters of ``train_classifier``; they are part of the cache key too.
HYPERPARAMETERS: dict[str, float | int] = {
    "seed": 0,
    "width": 32,
    "features": 64,
    "epochs": 30,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 1e-4,
}

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


class DigitsClassifier(nn.Module):
    """Conv(32) - maxpool - Conv(64) - maxpool - Linear(64) - Linear(10) on (N, 1, 8, 8) images in
    [-1, 1]. ``features`` gives the 64-d penultimate (post-ReLU) features, ``forward`` the 10 class
    logits."""

    def __init__(self, width: int = 32, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                   # 4x4
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                   # 2x2
            nn.Flatten(),
            nn.Linear(2 * width * 4, features), nn.ReLU(),
        )
        self.head = nn.Linear(features, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, *IMAGE_SHAPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --- data ---

def digits_splits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_images, train_labels, test_images, test_labels)`` on the CPU, images (N, 1, 8, 8):
    the ``digits`` data node's fixed split."""
    return bundled_digits()


# --- training ---

@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """One intra-op thread: this network is far too small to gain from more, and on a busy machine
    spinning worker threads slow training down by 10x or more. It also keeps the floating-point
    reduction order independent of the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms only, one thread, and the global RNG state restored afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]), _single_thread():
            yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def train_classifier(images: torch.Tensor, labels: torch.Tensor,
                     hyperparameters: dict | None = None) -> DigitsClassifier:
    """Train a fresh classifier on CPU ``images`` (N, 1, 8, 8) and int ``labels`` (N,).

    Deterministic: the same inputs give bit-identical weights (Adam on minibatches drawn in an
    order fixed by the seed). Returns the model in eval mode."""
    hp = {**HYPERPARAMETERS, **(hyperparameters or {})}
    images = images.detach().to("cpu", torch.float32).reshape(-1, *IMAGE_SHAPE)
    labels = labels.detach().to("cpu", torch.long)
    with _deterministic():
        torch.manual_seed(hp["seed"])
        model = DigitsClassifier(hp["width"], hp["features"]).float()
        order = torch.Generator().manual_seed(hp["seed"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        steps_per_epoch = -(-len(images) // hp["batch_size"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=hp["lr"], total_steps=hp["epochs"] * steps_per_epoch)
        model.train()
        for _ in range(hp["epochs"]):
            permutation = torch.randperm(len(images), generator=order)
            for start in range(0, len(images), hp["batch_size"]):
                index = permutation[start:start + hp["batch_size"]]
                loss = nn.functional.cross_entropy(model(images[index]), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


# --- cache ---

def cache_dir() -> Path:
    """``$EBMGRAPH_CACHE``, else ``$XDG_CACHE_HOME/ebmgraph``, else ``~/.cache/ebmgraph``."""
    if os.environ.get("EBMGRAPH_CACHE"):
        return Path(os.environ["EBMGRAPH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ebmgraph"


def cache_key(images: torch.Tensor, labels: torch.Tensor, hyperparameters: dict | None = None) -> str:
    """SHA-256 (hex) of the training code version, the training data bytes and the hyper-parameters."""
    hp = {**HYPERPARAMETERS, **(hyperparameters or {})}
    digest = hashlib.sha256()
    digest.update(TRAINING_VERSION.encode())
    digest.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    digest.update(json.dumps(hp, sort_keys=True).encode())
    return digest.hexdigest()


def classifier_path(directory: Path | None = None) -> Path:
    """Where the weights for the current code, data and hyper-parameters are cached."""
    images, labels, _, _ = digits_splits()
    directory = cache_dir() if directory is None else directory
    return directory / f"digits_classifier-{cache_key(images, labels)[:20]}.pt"


def _read(path: Path) -> DigitsClassifier | None:
    """The cached model, or None if the file is missing or unreadable (damaged, wrong shapes)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = DigitsClassifier(HYPERPARAMETERS["width"], HYPERPARAMETERS["features"])
        model.load_state_dict(state, strict=True)
    except Exception as error:  # noqa: BLE001 - any damage means: train again
        log.warning("cached digits classifier %s is unreadable (%s); training a new one", path, error)
        return None
    return model.eval()


def _write(model: nn.Module, path: Path) -> None:
    """Save the weights atomically (other processes may be writing the same cache file)."""
    try:
        with atomic_path(path) as temporary:
            torch.save(model.state_dict(), temporary)
    except OSError as error:
        log.warning("cannot cache the digits classifier at %s (%s); it will be trained again next time",
                    path, error)


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> DigitsClassifier:
    model = _read(path)
    if model is None:
        images, labels, _, _ = digits_splits()
        model = train_classifier(images, labels)
        _write(model, path)
    model.requires_grad_(False)
    return model.eval()


def load_classifier() -> DigitsClassifier:
    """The trained digits classifier (CPU, eval mode, frozen): from this process's memory, else
    from the disk cache, else trained now (a few seconds) and cached. Shared between callers: do
    not modify it."""
    return _load(classifier_path())


load_classifier.cache_clear = _load.cache_clear  # type: ignore[attr-defined]


# --- batched evaluation ---

def _batched(fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    x = torch.as_tensor(x).detach()
    if x.ndim < 2 or x[0].numel() != 64:
        raise ValueError(f"expected digit images of shape (N, 1, 8, 8); got shape {tuple(x.shape)}")
    x = x.to("cpu", torch.float32).reshape(-1, *IMAGE_SHAPE)
    with torch.no_grad(), _single_thread():
        if len(x) == 0:
            return fn(x)
        return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def classifier_features(x: torch.Tensor, model: DigitsClassifier | None = None,
                        batch_size: int = 1024) -> torch.Tensor:
    """Penultimate features (N, 64) of images ``x`` (N, 1, 8, 8) (any device; result on the CPU)."""
    model = load_classifier() if model is None else model
    return _batched(model.features, x, batch_size)


def classifier_logits(x: torch.Tensor, model: DigitsClassifier | None = None,
                      batch_size: int = 1024) -> torch.Tensor:
    """Class logits (N, 10) of images ``x`` (N, 1, 8, 8) (any device; result on the CPU)."""
    model = load_classifier() if model is None else model
    return _batched(model, x, batch_size)


def accuracy(model: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` that ``model`` classifies as ``labels``."""
    predicted = classifier_logits(images, model).argmax(dim=1)
    return (predicted == labels.cpu()).float().mean().item()
