import pytest
import torch

from ebmgraph.spec.load import load_graph

FAST = (
    "train.steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
    "train.progress=false", "data.batch_size=16", "models.energy.channels=8", "nodes.negatives.steps=3",
    "eval.n=32", "eval.steps=3",
)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


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


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test tensors are tiny: one intra-op thread is faster, and far faster when other processes
    share the two cores (OpenMP threads spin-wait against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
