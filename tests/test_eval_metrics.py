"""Evaluation metrics: the digits classifier and its cache, Fréchet distance, mode coverage, OOD AUROC."""

import math
import os

import numpy as np
import pytest
import torch

from ebmgraph.eval import digits_classifier as dc
from ebmgraph.eval.frechet import digits_fd, frechet_distance, gaussian_frechet
from ebmgraph.eval.modes import mode_coverage
from ebmgraph.eval.ood import GAUSSIAN_NOISE_STD, auroc, digits_ood_sets, energy_auroc


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the tests' classifier out of the user's cache (trained once for the whole module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EBMGRAPH_CACHE", str(tmp_path_factory.mktemp("ebmgraph-cache")))
        yield


@pytest.fixture(scope="module")
def splits():
    return dc.digits_splits()


@pytest.fixture(scope="module")
def classifier():
    return dc.load_classifier()


# --- classifier ---

def test_classifier_accuracy_and_shapes(classifier, splits):
    _, _, test, test_labels = splits
    assert dc.accuracy(classifier, test, test_labels) >= 0.95
    assert dc.classifier_features(test[:7]).shape == (7, 64)
    assert dc.classifier_logits(test[:7]).shape == (7, 10)
    assert not any(p.requires_grad for p in classifier.parameters())


def test_training_is_deterministic_and_leaves_global_state_alone(classifier, splits):
    train, train_labels, _, _ = splits
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    fresh = dc.train_classifier(train, train_labels)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    assert torch.equal(torch.get_rng_state(), rng)
    cached = classifier.state_dict()  # trained earlier in this session, then saved and loaded
    assert fresh.state_dict().keys() == cached.keys()
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, cached[name]), name


def test_cache_is_reused_and_repaired(tmp_path, monkeypatch):
    monkeypatch.setenv("EBMGRAPH_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_train(images, labels, hyperparameters=None):  # an untrained net: fast, still distinct
        calls.append(len(images))
        torch.manual_seed(len(calls))
        return dc.DigitsClassifier().eval()

    monkeypatch.setattr(dc, "train_classifier", fake_train)
    dc.load_classifier.cache_clear()
    try:
        first = dc.load_classifier()
        path = dc.classifier_path()
        assert calls == [1437] and path.is_file() and path.parent == tmp_path / "cache"
        assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
        assert dc.cache_key(*dc.digits_splits()[:2])[:20] in path.name
        assert dc.load_classifier() is first  # in-process cache
        mtime = path.stat().st_mtime_ns

        dc.load_classifier.cache_clear()
        second = dc.load_classifier()  # from disk: no training, no rewrite
        assert calls == [1437] and path.stat().st_mtime_ns == mtime and second is not first
        for name, value in first.state_dict().items():
            assert torch.equal(value, second.state_dict()[name])

        path.write_bytes(b"not a checkpoint")  # damaged file: train again and overwrite it
        dc.load_classifier.cache_clear()
        dc.load_classifier()
        assert len(calls) == 2
        torch.load(path, weights_only=True)
    finally:
        dc.load_classifier.cache_clear()


def test_cache_key_and_directory(splits, monkeypatch, tmp_path):
    images, labels = splits[0], splits[1]
    key = dc.cache_key(images, labels)
    assert dc.cache_key(images, labels, {"epochs": dc.HYPERPARAMETERS["epochs"] + 1}) != key
    assert dc.cache_key(images.flip(0), labels) != key
    monkeypatch.setattr(dc, "TRAINING_VERSION", "other")
    assert dc.cache_key(images, labels) != key

    monkeypatch.delenv("EBMGRAPH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dc.cache_dir() == tmp_path / "ebmgraph"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dc.cache_dir() == tmp_path / "home" / ".cache" / "ebmgraph"


# --- Fréchet distance ---

def test_frechet_of_identical_sets_is_zero():
    features = torch.randn(500, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(features, features + 2) == pytest.approx(16 * 4, rel=1e-9)


def test_frechet_matches_closed_forms():
    rng = np.random.default_rng(0)
    mean_a, mean_b = rng.normal(size=4), rng.normal(size=4)
    var_a, var_b = rng.uniform(0.1, 3, size=4), rng.uniform(0.1, 3, size=4)
    diagonal = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert gaussian_frechet(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(diagonal, rel=1e-10)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # a common rotation changes nothing
    rotated = gaussian_frechet(rotation @ mean_a, rotation @ np.diag(var_a) @ rotation.T,
                               rotation @ mean_b, rotation @ np.diag(var_b) @ rotation.T)
    assert rotated == pytest.approx(diagonal, rel=1e-9)

    # non-commuting 2x2 covariances: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for 2x2 PSD M
    cov_a, cov_b = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[0.5, -0.3], [-0.3, 1.5]])
    trace_sqrt = math.sqrt(np.trace(cov_a @ cov_b) + 2 * math.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
    expected = 1.0 + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    mean_b2 = np.array([1.0, 0.0])
    assert gaussian_frechet(np.zeros(2), cov_a, mean_b2, cov_b) == pytest.approx(expected, rel=1e-10)
    assert gaussian_frechet(mean_b2, cov_b, np.zeros(2), cov_a) == pytest.approx(expected, rel=1e-10)

    # from samples: the estimate converges to the formula
    n = 200_000
    a = rng.multivariate_normal(np.zeros(2), cov_a, size=n)
    b = rng.multivariate_normal(mean_b2, cov_b, size=n)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.03)


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_digits_fd_floor_and_noise(classifier, splits):
    train, _, test, _ = splits
    result = digits_fd(test)
    assert result["fd"] == pytest.approx(0, abs=1e-6) and result["n"] == 360
    floor = result["fd_floor"]
    assert floor > 0

    # Test-vs-test random halves (180 vs 180) sit near the floor *at the same sample size*, i.e. a
    # test half vs 180 training images; FD's small-sample bias makes both several times the
    # 360-vs-1437 floor, so that one is no fair yardstick at 180 samples. Averaged over 8 splits.
    features_test, features_train = dc.classifier_features(test), dc.classifier_features(train)
    generator = torch.Generator().manual_seed(0)
    halves, matched = [], []
    for _ in range(8):
        p, q = torch.randperm(360, generator=generator), torch.randperm(len(train), generator=generator)
        halves.append(frechet_distance(features_test[p[:180]], features_test[p[180:]]))
        matched.append(frechet_distance(features_test[p[:180]], features_train[q[:180]]))
    assert np.mean(halves) < 2 * np.mean(matched)
    assert np.mean(halves) < 20 * floor

    noise = digits_fd(torch.rand(360, 1, 8, 8, generator=generator) * 2 - 1)
    assert noise["fd_floor"] == floor
    assert noise["fd"] > 10 * floor and noise["fd"] > 10 * noise["fd_floor_matched"]
    assert noise["fd"] > 10 * max(halves)


# --- mode coverage ---

def test_mode_coverage_of_test_split(classifier, splits):
    _, _, test, _ = splits
    result = mode_coverage(test)
    assert result["modes_covered"] == 10 and sum(result["histogram"]) == 360
    assert 2.2 < result["class_entropy"] <= math.log(10) + 1e-9
    assert result["mean_confidence"] > 0.9


def test_mode_coverage_of_one_digit(classifier, splits):
    _, _, test, test_labels = splits
    result = mode_coverage(test[test_labels == 3])
    assert result["modes_covered"] == 1
    assert result["histogram"][3] >= 0.95 * (test_labels == 3).sum()
    assert result["class_entropy"] < 0.3


# --- OOD ---

def test_auroc_conventions():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(100, generator=generator)
    assert auroc(scores, scores) == pytest.approx(0.5)
    assert auroc(scores + 100, scores) == 1.0
    assert auroc(scores, scores + 100) == 0.0
    a, b = torch.randn(80, generator=generator), torch.randn(60, generator=generator) + 0.5
    assert auroc(b, a) == pytest.approx(1 - auroc(a, b))
    # energies: the score is -E, so lower energy on the data means high AUROC
    energy_in, energy_out = torch.zeros(10), torch.ones(10)
    assert auroc(-energy_in, -energy_out) == 1.0
    # a diverged model's NaN / -inf scores rank as least in-distribution, +inf as most
    assert auroc([0.0, 1.0], [float("nan"), float("-inf")]) == 1.0
    assert auroc([float("inf")], [1e30]) == 1.0


def test_digits_ood_sets(splits):
    _, _, test, _ = splits
    sets = digits_ood_sets(test, torch.Generator().manual_seed(0))
    again = digits_ood_sets(test, torch.Generator().manual_seed(0))
    assert list(sets) == ["uniform_noise", "gaussian_noised", "pixel_permuted", "inverted"]
    for name, x in sets.items():
        assert x.shape == test.shape and x.dtype == test.dtype, name
        assert x.min() >= -1 and x.max() <= 1, name
        assert torch.equal(x, again[name]), name
    assert torch.equal(sets["inverted"], -test)
    flat = test.reshape(len(test), -1)
    permuted = sets["pixel_permuted"].reshape(len(test), -1)
    assert torch.equal(permuted.sort(dim=1).values, flat.sort(dim=1).values)
    assert (permuted != flat).any(dim=1).float().mean() > 0.99
    difference = sets["gaussian_noised"] - test
    assert 0.5 * GAUSSIAN_NOISE_STD < difference.std() < GAUSSIAN_NOISE_STD
    assert sets["uniform_noise"].mean().abs() < 0.05


def test_energy_auroc_with_classifier_energy(classifier, splits):
    """The classifier read as an energy model (JEM: -E(x) = logsumexp of the logits) tells the
    test set from noise, shuffled pixels and inverted digits."""
    _, _, test, _ = splits
    sets = digits_ood_sets(test, torch.Generator().manual_seed(0))

    def score(x):
        return classifier(x).logsumexp(dim=1)

    result = energy_auroc(score, test, sets, batch_size=100)
    assert list(result) == list(sets)
    assert result["uniform_noise"] > 0.95
    assert result["pixel_permuted"] > 0.9 and result["inverted"] > 0.9
    assert 0.5 < result["gaussian_noised"] < 1
    flipped = energy_auroc(lambda x: -score(x), test, sets)
    for name in sets:
        assert flipped[name] == pytest.approx(1 - result[name])


def test_metrics_reject_images_of_another_shape(classifier):
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        mode_coverage(torch.zeros(4, 3, 32, 32))
