"""Fréchet distance between two sets of feature vectors, and its ``digits`` version.

The Fréchet distance of the gaussians fitted to two feature sets (means m1, m2; covariances S1,
S2) is

    |m1 - m2|^2 + tr(S1) + tr(S2) - 2 tr( sqrt( sqrt(S1) S2 sqrt(S1) ) )

computed in float64 with symmetric eigendecompositions only (no scipy): sqrt(S1) from the
eigendecomposition of S1, then the trace term as the sum of the square roots of the eigenvalues
of the symmetric matrix sqrt(S1) S2 sqrt(S1). Tiny negative eigenvalues (round-off in a PSD
matrix) are clamped to zero.

``digits_fd`` measures it in the 64-d penultimate features of ebmgraph's own digits classifier
(``digits_classifier.py``), so values are comparable between ebmgraph runs but not with published
FID numbers (which use Inception features on other data). The estimate is biased upwards for
small sample sets; compare values only at equal sample counts, and against ``fd_floor``.
"""

from __future__ import annotations

import numpy as np
import torch

from ebmgraph.eval.digits_classifier import classifier_features, digits_splits, load_classifier
from ebmgraph.nodes.data import fixed_subset


def _as_features(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of feature vectors (N, D); got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"{name} needs at least 2 feature vectors to estimate a covariance; got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off clamped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def gaussian_frechet(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """The Fréchet (2-Wasserstein squared) distance of N(mean_a, cov_a) and N(mean_b, cov_b)."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return max(float(distance), 0.0)


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between the gaussians fitted to two feature sets (N, D) and (M, D)
    (tensors or arrays; unbiased covariances). 0 for identical sets, up to round-off."""
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    return gaussian_frechet(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False))


def digits_fd(samples: torch.Tensor) -> dict[str, float | int]:
    """Fréchet distance of ``samples`` (N, 1, 8, 8) in [-1, 1] (any device) to the digits test split,
    in the features of ebmgraph's digits classifier.

    Returns

    - ``fd``: samples vs the 360 test images;
    - ``fd_floor``: the test split vs the whole training split (1437 images): the distance between
      two finite samples of the true distribution;
    - ``fd_floor_matched``: the test split vs ``min(N, 1437)`` fixed training images
      (the data node's ``reference``): what a perfect sampler would score with this many samples. FD is
      biased upwards for small sets (at N = 180 the bias is several times ``fd_floor``), so judge
      ``fd`` against this value;
    - ``n``: the number of samples N.
    """
    model = load_classifier()
    train, _, test, _ = digits_splits()
    samples_features = classifier_features(samples, model)
    test_features = classifier_features(test, model)
    matched = fixed_subset(train, max(len(samples_features), 2))
    return {
        "fd": frechet_distance(samples_features, test_features),
        "fd_floor": frechet_distance(test_features, classifier_features(train, model)),
        "fd_floor_matched": frechet_distance(test_features, classifier_features(matched, model)),
        "n": int(len(samples_features)),
    }
