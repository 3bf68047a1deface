"""Latent-conditional sampling with a trained clel run (Lee et al. 2023, §4.3-4.4), on digits.

    ebmgraph run graphs/clel.yaml --out runs/clel
    python examples/conditional_sampling.py runs/clel [--per-row 8]

Writes conditional.png in the run directory: instance-conditional rows (a test digit, then
samples of E(x | z) for its latent z = h(x)/‖h(x)‖), one set-conditional row per class (the set
latent of the class's training images), and composed rows (eq. 15: the sets {y, y+1} and
{y+1, y+2} together), and prints how often the digits classifier puts each class-conditional
row in its class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ebmgraph.eval.conditional import ConditionalEnergy, class_latents, latents, set_latent
from ebmgraph.eval.digits_classifier import classifier_logits, load_classifier
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.runs.run_dir import restore
from ebmgraph.viz.grids import save_samples_png

INSTANCES = 3


def conditional_rows(run_dir: Path, per_row: int) -> tuple[torch.Tensor, dict[int, float]]:
    """(the picture's rows, the fraction of each class row that the classifier puts in its class)."""
    program, _ = restore(run_dir)
    evaluation = Evaluation(program)
    energy, encoder = evaluation.spherical_energy, evaluation.representation
    images, labels = evaluation.labelled_training_set()
    rows, accuracy = [], {}
    test = program.nodes["data"].test_split()[:INSTANCES].to(program.device)
    for index, (image, z) in enumerate(zip(test, latents(encoder, test))):       # instance-conditional
        samples = evaluation.conditional_samples(ConditionalEnergy(energy, z), per_row - 1, f"instance{index}")
        rows.append(torch.cat([image[None].cpu(), samples]))
    for y, z in enumerate(class_latents(encoder, images, labels)):               # set-conditional, per class
        samples = evaluation.conditional_samples(ConditionalEnergy(energy, z), per_row, f"class{y}")
        accuracy[y] = float((classifier_logits(samples, load_classifier()).argmax(1) == y).float().mean())
        rows.append(samples)
    z = latents(encoder, images)
    for y in range(0, 10, 3):                                                    # composed: {y, y+1} and {y+1, y+2}
        pair = [set_latent(z[(labels == a) | (labels == (a + 1) % 10)]) for a in (y, (y + 1) % 10)]
        rows.append(evaluation.conditional_samples(ConditionalEnergy(energy, torch.stack(pair)), per_row,
                                                   f"composed{y}"))
    return torch.cat(rows), accuracy


def main(argv: list[str] | None = None) -> dict[int, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--per-row", type=int, default=8, help="samples per row")
    args = parser.parse_args(argv)
    pictures, accuracy = conditional_rows(args.run_dir, args.per_row)
    save_samples_png(pictures, args.run_dir / "conditional.png", nrow=args.per_row,
                     title=f"{INSTANCES} instance rows (digit, then samples); classes 0-9; composed sets")
    for y, fraction in accuracy.items():
        print(f"class {y}: {fraction:.2f} of its conditional samples are classified as {y}")
    return accuracy


if __name__ == "__main__":
    main()
