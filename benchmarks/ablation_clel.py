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

import argparse
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DivergenceError
from ebmgraph.runs.runner import Runner
from ebmgraph.store.run_files import EVAL_FILE
from tables import mean_and_spread

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="training iterations per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="trainings side by side (one thread each)")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        root = Path(args.out or scratch)
        jobs = {(name, seed): pool.submit(run_row, ROWS[name], seed, args.steps, root / f"row{row}-seed{seed}")
                for row, name in enumerate(args.rows) for seed in range(args.seeds)}
        lines = ["| row | FD | OOD AUROC (mean of 4) | AUROC noised | conditional accuracy | composed precision | "
                 "single-condition precision | diverged |", "|---|---|---|---|---|---|---|---|"]
        for name in args.rows:
            results = [jobs[(name, seed)].result() for seed in range(args.seeds)]
            kept = [r for r in results if not r["diverged"]]
            cells = [mean_and_spread([r[key] for r in kept], digits)
                     for key, digits in (("fd", ".1f"), ("ood", ".3f"), ("ood_noised", ".3f"), ("conditional", ".3f"),
                                         ("composed", ".3f"), ("single", ".3f"))]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(results) - len(kept)}/{len(results)} |")
            print(f"done: {name}", flush=True)
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
