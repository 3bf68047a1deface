"""Inception FID through torch-fidelity (the optional ``fid`` extra), from locally stored weights:
nothing is downloaded."""

from __future__ import annotations

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


def inception_fid(samples: torch.Tensor, reference: torch.Tensor, weights: str | None) -> float:
    """FID between samples and reference images with the Inception network at ``weights``."""
    if weights is None:
        raise DataError(f"the 'fid' metric needs eval.inception_weights: the path of {WEIGHTS_HINT}")
    path = Path(weights)
    if not path.is_file():
        raise DataError(f"Inception weights '{path}' not found (eval.inception_weights); it must be {WEIGHTS_HINT}")
    try:
        import torch_fidelity
    except ImportError:
        raise DataError("the 'fid' metric needs torch-fidelity: pip install 'ebmgraph[fid]'") from None
    metrics = torch_fidelity.calculate_metrics(
        input1=_Images(samples), input2=_Images(reference), fid=True, feature_extractor_weights_path=str(path),
        cuda=torch.cuda.is_available(), verbose=False)
    return float(metrics["frechet_inception_distance"])
