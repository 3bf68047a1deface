"""Class labels: data nodes give ``y`` for the very samples of ``x`` (digits, CIFAR-10, npz files
with a label array), toys and unlabelled files give none, and a graph wiring absent labels fails
its check with both nodes named."""

import pickle

import numpy as np
import pytest
import torch

from ebmgraph.engine.check import check_graph
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DataError, GraphError
from ebmgraph.nodes.data import Cifar10, Digits, EightGaussians, Npz, bundled_digits
from ebmgraph.nodes.ports import LABEL, SAMPLE

CPU = torch.device("cpu")


def make(cls, **config):
    return cls("data", cls.Config(**config), {}, CPU)


def draw(node, step=3):
    return node(StepContext(seed=0, step=step, device=CPU))


def labels_of(x: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> list[set[int]]:
    """For each sample of ``x``, the labels of the stored images equal to it."""
    same = (x.flatten(1)[:, None] == images.flatten(1)[None]).all(dim=2)
    return [set(labels[row].tolist()) for row in same]


def test_digit_labels_are_those_of_the_drawn_images():
    node = make(Digits, batch_size=64)
    train, train_labels, _, _ = bundled_digits()
    for step in (0, 7):
        batch = draw(node, step)
        assert list(batch) == ["x", "y"] and batch["y"].dtype == torch.int64 and batch["y"].shape == (64,)
        matches = labels_of(batch["x"], train, train_labels)
        assert all(matches) and all(y in found for y, found in zip(batch["y"].tolist(), matches))
    assert len(set(draw(node)["y"].tolist())) > 5
    assert torch.equal(node.test_labels, bundled_digits()[3])
    assert node.infer({})["y"].type == LABEL and node.infer({})["y"].shape == (64,)


def test_cifar10_labels_follow_the_images(tmp_path, write_cifar):
    write_cifar(tmp_path / "cifar", per_batch=6)
    node = make(Cifar10, root=str(tmp_path / "cifar"), batch_size=12)
    batch = draw(node)
    stored = []
    for i in range(1, 6):
        with open(tmp_path / "cifar" / f"data_batch_{i}", "rb") as file:
            stored.append(pickle.load(file, encoding="bytes")[b"data"])
    images = torch.from_numpy(np.concatenate(stored).reshape(-1, 3, 32, 32)).float() / 127.5 - 1
    matches = labels_of(batch["x"], images, torch.arange(6).repeat(5))  # the fixture labels batch rows 0..5
    assert all(matches) and all(y in found for y, found in zip(batch["y"].tolist(), matches))
    assert torch.equal(node.test_labels, torch.arange(6))


@pytest.fixture
def labelled_npz(tmp_path):
    """Samples whose first value encodes their label (label = row % 4), a test split likewise."""
    path = tmp_path / "labelled.npz"
    rows = np.arange(40)
    np.savez(path, x=np.stack([rows, -rows], axis=1).astype(np.float32), y=rows % 4,
             t=np.stack([rows[:8], rows[:8]], axis=1), t_labels=(rows[:8] % 4).astype(np.uint8),
             floats=rows / 2, short=rows[:5], negative=rows - 1)
    return str(path)


def test_npz_labels_line_up_with_samples(labelled_npz):
    node = make(Npz, path=labelled_npz, batch_size=10, test_key="t", test_label_key="t_labels")
    for step in (1, 2):
        batch = draw(node, step)
        assert torch.equal(batch["y"], batch["x"][:, 0].long() % 4) and batch["y"].dtype == torch.int64
    assert node.infer({})["y"].shape == (10,)
    assert torch.equal(node.test_labels, torch.arange(8) % 4) and node.test_labels.dtype == torch.int64


def test_npz_without_labels_gives_none(labelled_npz, tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones((12, 3)))
    for node in (make(Npz, path=str(plain), batch_size=4), make(Npz, path=labelled_npz, batch_size=4, label_key="z"),
                 make(Npz, path=labelled_npz, batch_size=4, key="t", label_key="t")):
        assert "y" not in draw(node) and node.train_labels is None and node.test_labels is None
        assert node.infer({})["y"].type == LABEL and node.infer({})["y"].shape is None
    labelled = make(Npz, path=labelled_npz, batch_size=4)
    unlabelled = make(Npz, path=labelled_npz, batch_size=4, label_key="z")
    assert torch.equal(draw(labelled)["x"], draw(unlabelled)["x"]), "labels must not change the samples drawn"


@pytest.mark.parametrize("config, message", [
    ({"label_key": "floats"}, "array 'floats' in data file '.*' holds labels, which must be integers"),
    ({"label_key": "short"}, r"has shape \(5,\); expected one label per sample, shape \(40,\)"),
    ({"label_key": "negative"}, r"holds a negative label \(-1\)"),
    ({"test_label_key": "t_labels"}, "test_label_key 't_labels' needs test_key"),
    ({"test_key": "t", "test_label_key": "missing"}, "has no array 'missing'"),
])
def test_npz_label_errors(labelled_npz, config, message):
    with pytest.raises(DataError, match=message):
        make(Npz, path=labelled_npz, batch_size=4, **config)


def test_toys_have_no_labels():
    node = make(EightGaussians, batch_size=8)
    assert [p.name for p in node.outputs] == ["x"] and list(draw(node)) == ["x"]


def test_x_stays_the_first_output():
    for cls in (Digits, Cifar10, Npz):
        assert [(p.name, p.type) for p in cls.outputs] == [("x", SAMPLE), ("y", LABEL)]


def _check_errors(*overrides: str) -> str:
    with pytest.raises(GraphError) as error:
        check_graph(load_graph("graphs/jem.yaml", None, overrides))
    return str(error.value)


def test_wiring_labels_of_a_toy_is_a_located_error():
    message = _check_errors("data.type=eight_gaussians")
    assert message.startswith("graphs/jem.yaml:") and "losses.cross_entropy.labels" in message
    assert "node 'data' (eight_gaussians) has no output port 'y'" in message


def test_wiring_labels_of_an_unlabelled_file_is_a_located_error(tmp_path):
    path = tmp_path / "images.npz"
    np.savez(path, x=np.zeros((70, 1, 8, 8), dtype=np.float32))
    message = _check_errors("data.type=npz", f"data.path={path}")
    assert message.startswith("graphs/jem.yaml:") and ": losses.cross_entropy.labels: " in message
    assert ("node 'data' gives Label to input 'labels' of node 'cross_entropy': the data set has no labels"
            in message)


def test_labels_are_not_samples():
    message = _check_errors("nodes.negative_energy.x=data.y")
    assert "node 'data' output 'y' is Label but node 'negative_energy' input 'x' expects Sample" in message
