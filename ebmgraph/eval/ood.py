"""Out-of-distribution detection: how well a score separates test data from corrupted data.

Convention: a score is HIGHER for samples that look MORE in-distribution. For an energy-based
model the score is the negative energy, ``-E(x)`` (low energy = likely). ``auroc`` is then the
probability that a random in-distribution sample scores above a random out-of-distribution one:
1.0 separates them perfectly, 0.5 is chance, below 0.5 ranks the OOD data as more likely.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

#: Standard deviation of the gaussian noise of ``gaussian_noised``, in data units (images span
#: [-1, 1], so 0.3 is 15% of the range: clearly visible, yet the digit stays recognisable).
GAUSSIAN_NOISE_STD = 0.3


def _as_scores(scores, name: str) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().to("cpu", torch.float64).numpy()
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) == 0:
        raise ValueError(f"{name} is empty")
    return scores


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Dense ranks (ties kept), which is all AUROC depends on; NaN (a diverged model) ranks with
    -inf below every finite score, +inf above."""
    return np.unique(np.where(np.isnan(scores), -np.inf, scores), return_inverse=True)[1].reshape(-1)


def auroc(scores_in, scores_out) -> float:
    """Area under the ROC curve for telling ``scores_in`` (in-distribution, label 1) from
    ``scores_out`` (label 0), where a higher score means more in-distribution (for energies pass
    ``-E``). Swapping the two arguments gives ``1 - auroc``. Non-finite scores are ranked: +inf
    above, -inf and NaN below all finite scores."""
    scores_in, scores_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    labels = np.concatenate([np.ones(len(scores_in)), np.zeros(len(scores_out))])
    return float(roc_auc_score(labels, _ranks(np.concatenate([scores_in, scores_out]))))


def digits_ood_sets(test: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Out-of-distribution sets made from ``test`` images (N, C, H, W) in [-1, 1], each the shape
    of ``test`` and on its device, drawn with ``generator`` (so a seeded generator repeats them):

    - ``uniform_noise``: i.i.d. U[-1, 1] pixels;
    - ``gaussian_noised``: test + N(0, GAUSSIAN_NOISE_STD²) noise (σ = 0.3), clamped to [-1, 1];
    - ``pixel_permuted``: each image's pixels shuffled by its own random permutation (same
      pixel-value histogram, no spatial structure);
    - ``inverted``: ``-test`` (the in-range negative image).
    """
    shape, flat = test.shape, test.reshape(len(test), -1)

    def draw(fn, size) -> torch.Tensor:
        return fn(size, generator=generator, device=generator.device).to(test.device, test.dtype)

    uniform = draw(torch.rand, shape) * 2 - 1
    noised = (test + GAUSSIAN_NOISE_STD * draw(torch.randn, shape)).clamp(-1, 1)
    permutation = draw(torch.rand, flat.shape).argsort(dim=1)
    permuted = flat.gather(1, permutation).reshape(shape)
    return {"uniform_noise": uniform, "gaussian_noised": noised, "pixel_permuted": permuted, "inverted": -test}


def _scores(score_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> np.ndarray:
    parts = [score_fn(x[i:i + batch_size]).detach().reshape(-1).to("cpu", torch.float64)
             for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy()


def energy_auroc(score_fn: Callable[[torch.Tensor], torch.Tensor], test: torch.Tensor,
                 ood_sets: dict[str, torch.Tensor], batch_size: int = 512,
                 no_grad: bool = True) -> dict[str, float]:
    """AUROC of ``test`` against each OOD set, where ``score_fn`` maps a batch to per-sample
    in-distribution scores (higher = more in-distribution; for an energy model ``lambda x: -E(x)``).
    Batches of ``batch_size`` are scored under ``torch.no_grad()`` unless ``no_grad`` is False
    (for scores that need input gradients). Returns ``{name: auroc}`` in the order of ``ood_sets``."""
    context = torch.no_grad if no_grad else torch.enable_grad
    with context():
        scores_in = _scores(score_fn, test, batch_size)
        return {name: auroc(scores_in, _scores(score_fn, x, batch_size)) for name, x in ood_sets.items()}
