"""Table 2 of Du et al. (2021) in miniature on digits, with the stability measure of Figure 8.

    python benchmarks/ablation_improved_cd.py --steps 600 --seeds 3

Rows add the paper's components in its order: none; + data augmentation (chains start from
augmented bank samples, and evaluation chains get an augmentation transition every 20 steps,
Algorithm 2); + multi-scale energy; + L_opt (the KL term's energy part); + L_ent (the graph as
shipped). Each row is graphs/improved_cd.yaml with --set switches. Columns: FD and modes covered
of the graph's evaluation (EMA energy), and the energy gap E(x-) - E(x+) that Figure 8 plots:
its mean absolute value over the second half of training and its largest absolute value (stable
training keeps it near zero); a run stopped by divergence is counted. Mean ± std over seeds, all
runs in one go on this machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ebmgraph.runs.runner import Runner
from ebmgraph.errors import DivergenceError
from ebmgraph.engine.load import load_graph
from ebmgraph.store.run_files import EVAL_FILE, METRICS_FILE
from tables import mean_and_spread

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "improved_cd.yaml"
NO_AUGMENTATION = ("nodes.negatives.init=bank", "nodes.augmented=null", "eval.augment=null")
ONE_SCALE = ("models.energy.scales=1",)
NO_KL = ("nodes.negatives.differentiable=none", "losses.kl_opt=null", "losses.kl_entropy=null",
         "optimizers.energy_optimizer.losses=[cd,regularizer]")
NO_ENTROPY = ("losses.kl_entropy=null", "optimizers.energy_optimizer.losses=[cd,regularizer,kl_opt]")
ROWS = {  # name: --set switches, in the order of Table 2
    "none": NO_AUGMENTATION + ONE_SCALE + NO_KL,
    "+aug": ONE_SCALE + NO_KL,
    "+aug +multiscale": NO_KL,
    "+aug +multiscale +KL opt": NO_ENTROPY,
    "+aug +multiscale +KL opt +ent": (),
}


def gap_stability(run_dir: Path) -> tuple[float, float]:
    """(mean |E- - E+| over the second half of the logged steps, max |E- - E+|)."""
    gaps = [abs(record["cd/gap"]) for record in map(json.loads, (run_dir / METRICS_FILE).read_text().splitlines())
            if "cd/gap" in record]
    late = gaps[len(gaps) // 2:]
    return sum(late) / len(late), max(gaps)


def run_row(switches: tuple[str, ...], seed: int, steps: int, run_dir: Path) -> dict:
    spec = load_graph(GRAPH, None, (f"seed={seed}", f"train.steps={steps}", "train.progress=false", *switches))
    try:
        Runner(spec, run_dir).run()
        diverged = False
    except DivergenceError:
        diverged = True
    mean_gap, max_gap = gap_stability(run_dir)
    metrics = json.loads((run_dir / EVAL_FILE).read_text())["metrics"] if not diverged else {}
    return {"fd": metrics.get("fd"), "modes": metrics.get("modes_covered"), "mean_gap": mean_gap,
            "max_gap": max_gap, "diverged": diverged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="training iterations per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        lines = ["| row | FD | modes | mean \\|E- − E+\\| (2nd half) | max \\|E- − E+\\| | diverged |",
                 "|---|---|---|---|---|---|"]
        for name in args.rows:
            results = [run_row(ROWS[name], seed, args.steps, root / f"{name.replace(' ', '')}-{seed}")
                       for seed in range(args.seeds)]
            column = {key: [r[key] for r in results] for key in results[0]}
            lines.append(f"| {name} | {mean_and_spread(column['fd'], '.2f')} | {mean_and_spread(column['modes'], '.1f')} | "
                         f"{mean_and_spread(column['mean_gap'], '.4f')} | {mean_and_spread(column['max_gap'], '.4f')} | "
                         f"{sum(column['diverged'])}/{len(results)} |")
            print(f"done: {name}", flush=True)
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
