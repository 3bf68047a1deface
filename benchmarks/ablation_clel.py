"""Tables 5 and 6 of Lee et al. (2023) in miniature on digits.

    python benchmarks/ablation_clel.py --steps 600 --seeds 3 --jobs 2

Rows are graphs/clel.yaml with --set switches: (a) the baseline without latents (β = 0); (b) the
MLP projection g without the EBM's latents as extra negatives of the encoder; (c) both (the graph
as shipped, β = 0.01); (d) no projection (identity); (e) a linear projection; then β = 0.001 and
β = 0.1 (Table 6; β = 0.01 is row (c)). Columns: FD of fresh chains from noise (EMA energy), mean
OOD AUROC of the score of eq. 14 over the four corrupted-digit sets and against gaussian-noised
digits alone, class-conditional accuracy of samples of E(x | z_y) (§4.3; chance 0.1) and the
composition check of eq. 15 (shared-class precision of composed samples; about 0.5 for one
condition). Mean ± std over seeds. ``--jobs`` runs that many trainings side by side, one torch
thread each (two processes with two threads each on two cores slow each other down tenfold).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DivergenceError
from ebmgraph.runs.runner import Runner
from ebmgraph.store.run_files import EVAL_FILE
from tables import ablation_arguments, ablation_table

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "clel.yaml"
ROWS = {  # name: --set switches, Table 5 then Table 6
    "(a) baseline, β = 0": ("models.energy.beta=0",),
    "(b) MLP g, no EBM negatives": ("losses.contrastive.negatives=null",),
    "(c) MLP g + EBM negatives (shipped)": (),
    "(d) identity g + EBM negatives": ("models.energy.projection=identity",),
    "(e) linear g + EBM negatives": ("models.energy.projection=linear",),
    "β = 0.001": ("models.energy.beta=0.001",),
    "β = 0.1": ("models.energy.beta=0.1",),
}
OOD_SETS = ("uniform_noise", "gaussian_noised", "pixel_permuted", "inverted")


def run_row(switches: tuple[str, ...], seed: int, steps: int, run_dir: Path) -> dict:
    torch.set_num_threads(1)
    spec = load_graph(GRAPH, None, (f"seed={seed}", f"train.steps={steps}", "train.progress=false", *switches))
    try:
        Runner(spec, run_dir).run()
    except DivergenceError:
        return {"diverged": True}
    metrics = json.loads((run_dir / EVAL_FILE).read_text())["metrics"]
    return {"diverged": False, "fd": metrics["fd"],
            "ood": sum(metrics[f"auroc_{name}"] for name in OOD_SETS) / len(OOD_SETS),
            "ood_noised": metrics["auroc_gaussian_noised"], "conditional": metrics["conditional_accuracy"],
            "composed": metrics["composed_precision"], "single": metrics["single_precision"]}


def main() -> None:
    args = ablation_arguments(__doc__, ROWS, steps=600)
    print("\n" + ablation_table(args, {name: (switches,) for name, switches in ROWS.items()}, run_row,
                               [("FD", "fd", ".1f"), ("OOD AUROC (mean of 4)", "ood", ".3f"),
                                ("AUROC noised", "ood_noised", ".3f"), ("conditional accuracy", "conditional", ".3f"),
                                ("composed precision", "composed", ".3f"),
                                ("single-condition precision", "single", ".3f")]))


if __name__ == "__main__":
    main()
