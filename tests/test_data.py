import numpy as np
import pytest
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.errors import DataError
from ebmgraph.nodes.data import Cifar10, Digits, Npz
from ebmgraph.nodes.registry import NODES
from ebmgraph.nodes.toys import TOY_TYPES

CPU = torch.device("cpu")


def make(cls, **config):
    return cls("data", cls.Config(**config), {}, CPU)


def batch(node, seed=0, step=3):
    return node(StepContext(seed=seed, step=step, device=CPU))["x"]


@pytest.fixture(scope="module")
def digits():
    return make(Digits, batch_size=32)


@pytest.fixture
def npz_file(tmp_path):
    path = tmp_path / "samples.npz"
    np.savez(path, x=np.arange(60, dtype=np.int64).reshape(20, 3), t=np.ones((5, 3)), words=np.array(["a", "b"]),
             scalar=np.array(1.0), empty=np.zeros((0, 3)), bad=np.full((4, 3), np.nan))
    return str(path)


@pytest.mark.parametrize("type_name", sorted(TOY_TYPES))
def test_toy_batches(type_name):
    cls = NODES.get(type_name)
    node = make(cls, batch_size=16)
    x = batch(node)
    assert x.shape == (16, 2) and x.dtype == torch.float32
    assert node.infer({})["x"].shape == (16, 2)
    assert torch.equal(x, batch(node))
    assert not torch.equal(x, batch(node, step=4))
    assert not torch.equal(x, batch(node, seed=1))
    reference = node.reference(2000)
    assert reference.shape == (2000, 2) and torch.equal(reference, node.reference(2000))
    assert reference.abs().max() < 6 and node.test_split() is None


def test_toy_config_reaches_sampler():
    cls = NODES.get("rings")
    small, large = make(cls, scale=1.0, noise=0.0), make(cls, scale=4.0, noise=0.0)
    assert small.reference(500).norm(dim=1).max() <= 1.0 + 1e-5
    assert large.reference(500).norm(dim=1).max() > 3.9


def test_digits(digits):
    x = batch(digits)
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32
    assert digits.sample_shape == (1, 8, 8)
    assert torch.equal(x, batch(digits)) and not torch.equal(x, batch(digits, step=4))
    assert len(torch.unique(x.flatten(1), dim=0)) == 32
    test = digits.test_split()
    train = digits.reference(10_000)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert len(digits.train_labels) == len(train) and len(digits.test_labels) == len(test)
    assert train.min() == -1 and train.max() == 1 and test.min() >= -1 and test.max() <= 1
    assert torch.equal(test, make(Digits).test_split())


def test_digits_on_meta_device():
    node = Digits("data", Digits.Config(batch_size=8), {}, torch.device("meta"))
    assert node.infer({})["x"].shape == (8, 1, 8, 8)


def test_npz(npz_file):
    node = make(Npz, path=npz_file, batch_size=5, test_key="t")
    x = batch(node)
    assert x.shape == (5, 3) and x.dtype == torch.float32
    assert torch.equal(x, batch(node)) and not torch.equal(x, batch(node, step=4))
    assert set(x[:, 0].tolist()) <= set(range(0, 60, 3))
    assert node.test_split().shape == (5, 3)
    assert make(Npz, path=npz_file, batch_size=5).test_split() is None


@pytest.mark.parametrize("config, message", [
    ({"path": "missing.npz"}, "data file 'missing.npz' not found"),
    ({"key": "y"}, "has no array 'y' (it has: x, t, words, scalar, empty, bad)"),
    ({"key": "words"}, "is not numeric"),
    ({"key": "scalar"}, "expected samples along the first axis"),
    ({"key": "empty"}, "is empty"),
    ({"key": "bad", "batch_size": 2}, "NaN"),
    ({"batch_size": 64}, "has 20 training samples, fewer than batch_size 64"),
])
def test_npz_errors(npz_file, config, message):
    config = {"path": npz_file, "batch_size": 4, **config}
    with pytest.raises(DataError, match="data file '.*'") as error:
        make(Npz, **config)
    assert message in str(error.value)


def test_cifar10(tmp_path, write_cifar):
    write_cifar(tmp_path / "cifar")
    node = make(Cifar10, root=str(tmp_path / "cifar"), batch_size=6)
    x = batch(node)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, batch(node)) and not torch.equal(x, batch(node, step=4))
    train, test = node.reference(100), node.test_split()
    assert train.shape == (20, 3, 32, 32) and test.shape == (4, 3, 32, 32)
    assert train.min() == -1 and train.max() == 1
    assert len(node.train_labels) == 20 and len(node.test_labels) == 4


def test_cifar10_missing(tmp_path, write_cifar):
    with pytest.raises(DataError, match="CIFAR-10 folder '.*nowhere' not found: download CIFAR-10 'python version'"):
        make(Cifar10, root=str(tmp_path / "nowhere"))
    write_cifar(tmp_path / "cifar")
    (tmp_path / "cifar" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="CIFAR-10 file '.*data_batch_3' not found: download"):
        make(Cifar10, root=str(tmp_path / "cifar"), batch_size=4)
    (tmp_path / "cifar" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="CIFAR-10 file '.*data_batch_3' cannot be read"):
        make(Cifar10, root=str(tmp_path / "cifar"), batch_size=4)
