"""Inception FID through torch-fidelity (the optional ``fid`` extra), from locally stored weights:
nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ebmgraph.errors import DataError

WEIGHTS_HINT = ("the FID Inception weights file 'pt_inception-2015-12-05-6726825d.pth' (as published with "
                "pytorch-fid / torch-fidelity), stored locally")


class _Images(torch.utils.data.Dataset):
    """(N, C, H, W) samples in [-1, 1] as the uint8 RGB tensors torch-fidelity reads."""

    def __init__(self, samples: torch.Tensor):
        images = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        self.images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def inception_problem(weights: str | None) -> str | None:
    """Why the Inception metrics cannot run (no weights path, no such file, no torch-fidelity), or None."""
    if weights is None:
        return f"the Inception metrics need eval.inception_weights: the path of {WEIGHTS_HINT}"
    if not Path(weights).is_file():
        return f"Inception weights '{weights}' not found (eval.inception_weights); it must be {WEIGHTS_HINT}"
    if importlib.util.find_spec("torch_fidelity") is None:
        return "the Inception metrics need torch-fidelity: pip install 'ebmgraph[fid]'"
    return None


def inception_metrics(samples: torch.Tensor, reference: torch.Tensor | None, weights: str | None) -> dict:
    """Inception score of ``samples`` and, given ``reference`` images, their FID against them, with
    the Inception network at ``weights``; the sample and reference counts come with them."""
    problem = inception_problem(weights)
    if problem is not None:
        raise DataError(problem)
    import torch_fidelity

    fid = reference is not None
    metrics = torch_fidelity.calculate_metrics(
        input1=_Images(samples), input2=_Images(reference) if fid else None, fid=fid, isc=not fid,
        feature_extractor_weights_path=str(weights), cuda=torch.cuda.is_available(), verbose=False)
    if fid:
        return {"fid": float(metrics["frechet_inception_distance"]), "fid_samples": len(samples),
                "fid_reference": len(reference)}
    return {"inception_score": float(metrics["inception_score_mean"]),
            "inception_score_std": float(metrics["inception_score_std"]), "inception_score_samples": len(samples)}
