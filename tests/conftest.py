import pickle

import numpy as np
import pytest
import torch

import monte_carlo
from ebmgraph.engine.load import load_graph

FAST = (
    "train.steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
    "train.progress=false", "data.batch_size=16", "models.energy.channels=8", "nodes.negatives.steps=3",
    "eval.n=32", "eval.steps=3",
)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true",
                     help=f"run tests marked slow, and {monte_carlo.SLOW_FACTOR}x the hypothesis examples")


def pytest_configure(config):
    monte_carlo.scale = monte_carlo.SLOW_FACTOR if config.getoption("--runslow") else 1


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fast_graph():
    """Load a graph from graphs/ with settings small enough for a test (extra overrides last)."""
    def load(name: str, *overrides: str, profile: str | None = None):
        return load_graph(f"graphs/{name}.yaml", profile, FAST + overrides)
    return load


@pytest.fixture
def write_cifar():
    """A writer of fake CIFAR-10 python batches (``per_batch`` random images each) into a new folder."""
    def write(root, per_batch=4):
        root.mkdir()
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            data[0] = [0] * 3071 + [255]
            with open(root / name, "wb") as file:
                pickle.dump({b"data": data, b"labels": list(range(per_batch))}, file)
    return write


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test tensors are tiny: one intra-op thread is faster, and far faster when other processes
    share the two cores (OpenMP threads spin-wait against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
