"""Mode coverage of digit samples, judged by ebmgraph's digits classifier.

A sampler that has collapsed onto a few digits shows few ``modes_covered`` and a low
``class_entropy``; a sampler that produces unrecognisable images shows a low ``mean_confidence``.
"""

from __future__ import annotations

import math

import torch

from ebmgraph.eval.digits_classifier import NUM_CLASSES, classifier_logits, load_classifier

#: A class counts as covered when at least this fraction of the samples is predicted as it.
COVERAGE_THRESHOLD = 0.05


def mode_coverage(samples: torch.Tensor, threshold: float = COVERAGE_THRESHOLD) -> dict:
    """Classify ``samples`` (N, 1, 8, 8) in [-1, 1] (any device) with the digits classifier.

    Returns ``histogram`` (10 counts of predicted classes, a list of ints), ``modes_covered`` (the
    number of classes predicted for at least ``threshold`` of the samples), ``class_entropy`` (of
    the predicted class frequencies, natural log: at most log 10 = 2.303 for a uniform spread, 0 for
    a single class) and ``mean_confidence`` (the mean over samples of the largest softmax
    probability)."""
    logits = classifier_logits(samples, load_classifier())
    if len(logits) == 0:
        raise ValueError("mode_coverage needs at least one sample")
    counts = torch.bincount(logits.argmax(dim=1), minlength=NUM_CLASSES)
    frequencies = counts.double() / len(logits)
    present = frequencies[frequencies > 0]
    return {
        "histogram": counts.tolist(),
        "modes_covered": int((frequencies >= threshold).sum()),
        "class_entropy": float(-(present * present.log()).sum()),
        "mean_confidence": float(logits.double().softmax(dim=1).max(dim=1).values.mean()),
        "max_entropy": math.log(NUM_CLASSES),
    }
