"""Inpainting with a trained dual_mcmc run (Cui & Han 2023, appendix A.3), on the digits test split.

    ebmgraph run graphs/dual_mcmc.yaml --out runs/dual_mcmc
    python examples/inpainting.py runs/dual_mcmc [--n 360]

Each occluded image goes through three stages: Inf+Gen (g of the inference model's mean of the
occluded image), Inf+T_z+Gen (posterior Langevin on the observed pixels only, from there), and
Inf+T_z+Gen+T_x (the EBM's Langevin from that recovery). Masks: centered blocks of 3x3, 4x4
and 5x5 pixels (M3, M4, M5: 14%, 25%, 39% of an 8x8 digit) and random pixels (R20, R30, R40:
that share occluded). Prints PSNR / SSIM of each stage against the original images (scikit-
image, data range 2 for images in [-1, 1]) and writes inpainting.png in the run directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ebmgraph.runs.run_dir import restore
from ebmgraph.eval.reconstruction import reconstruct
from ebmgraph.viz.grids import save_samples_png

STAGES = {"inference": "Inf+Gen", "posterior": "Inf+T_z+Gen", "revised": "Inf+T_z+Gen+T_x"}
MASKS = ("M3", "M4", "M5", "R20", "R30", "R40")


def make_mask(kind: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """1 = observed. ``M<k>``: a centered k x k block hidden; ``R<p>``: p% of the pixels hidden."""
    n, _, height, width = shape
    mask = torch.ones(shape)
    if kind.startswith("M"):
        k = int(kind[1:])
        top, left = (height - k) // 2, (width - k) // 2
        mask[:, :, top:top + k, left:left + k] = 0
    else:
        hidden = torch.rand((n, 1, height, width), generator=generator) < int(kind[1:]) / 100
        mask[hidden.expand(shape)] = 0
    return mask


def scores(recovered: torch.Tensor, original: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM over images (grayscale, data range 2)."""
    psnr, ssim = [], []
    for a, b in zip(recovered.clamp(-1, 1).numpy(), original.numpy()):
        psnr.append(peak_signal_noise_ratio(b[0], a[0], data_range=2.0))
        ssim.append(structural_similarity(b[0], a[0], data_range=2.0, win_size=7))
    return sum(psnr) / len(psnr), sum(ssim) / len(ssim)


def inpaint(run_dir: Path, n: int | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    program, _ = restore(run_dir)
    test = program.nodes["data"].test_split()[:n]
    generator = torch.Generator().manual_seed(program.spec.seed)
    results, pictures = {}, []
    for kind in MASKS:
        mask = make_mask(kind, tuple(test.shape), generator)
        stages = reconstruct(program, test, mask)
        results[kind] = {stage: scores(images.detach().cpu(), test) for stage, images in stages.items()}
        pictures += [test[:8], (test * mask)[:8]] + [images[:8].detach().cpu() for images in stages.values()]
    save_samples_png(torch.cat(pictures), run_dir / "inpainting.png", nrow=8,
                     title="rows per mask: original, occluded, " + ", ".join(STAGES.values()))
    return results


def table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = ["| PSNR / SSIM | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for stage, label in STAGES.items():
        cells = [f"{results[k][stage][0]:.2f} / {results[k][stage][1]:.3f}" for k in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, help="number of test images (default: all 360)")
    args = parser.parse_args(argv)
    print(table(inpaint(args.run_dir, args.n)))


if __name__ == "__main__":
    main()
