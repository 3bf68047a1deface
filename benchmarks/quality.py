"""Quality of every graph in graphs/: train each on its profiles for a wall-clock budget and a
number of seeds, evaluate as the graph's eval section says, print one markdown table.

    python benchmarks/quality.py --budget 120 --seeds 2 [--graphs short_run igebm] [--profiles default toy2d]

Cells are mean ± standard deviation over seeds. Digits rows: test accuracy (classifier energies:
jem), FD to the test split (its floor, test vs train at the same sample size, beside it), modes
covered of 10 and class entropy, OOD AUROC of the graph's score (-E, or CLEL's eq. 14) against
uniform noise, noised, permuted and inverted digits, class-conditional accuracy (clel). 2-D
rows: exact KL(data||model), KL(model||data) and TV on the grid, KL(data||sample histogram),
AUROC vs a uniform box. A run stopped by divergence is counted in its
own column and left out of the others.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from ebmgraph.runs.runner import Runner
from ebmgraph.errors import DivergenceError
from ebmgraph.engine.load import load_graph
from ebmgraph.store.run_files import EVAL_FILE

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
DIGITS_COLUMNS = [("accuracy", "accuracy"), ("FD", "fd"), ("FD floor", "fd_floor_matched"),
                  ("modes", "modes_covered"), ("class entropy", "class_entropy"), ("AUROC noise", "auroc_uniform_noise"),
                  ("AUROC noised", "auroc_gaussian_noised"), ("AUROC permuted", "auroc_pixel_permuted"),
                  ("AUROC inverted", "auroc_inverted"), ("conditional accuracy", "conditional_accuracy")]
TOY_COLUMNS = [("KL(data‖model)", "kl_data_model"), ("KL(model‖data)", "kl_model_data"), ("TV", "tv"),
               ("KL(data‖samples)", "kl_data_samples"), ("AUROC box", "auroc_uniform_box")]

def run_once(graph: str, profile: str, seed: int, budget: float, root: Path) -> dict:
    spec = load_graph(GRAPHS / f"{graph}.yaml", profile, (f"seed={seed}", f"train.max_seconds={budget}",
                                                         "train.progress=false"))
    run_dir = root / f"{graph}-{profile}-{seed}"
    start = time.perf_counter()
    try:
        steps = Runner(spec, run_dir).run()
    except DivergenceError as error:
        print(f"diverged: {graph} / {profile} / seed {seed}: {error}", flush=True)
        return {"steps": None, "seconds": time.perf_counter() - start, "diverged": 1}
    record = json.loads((run_dir / EVAL_FILE).read_text())
    return {"steps": steps, "seconds": time.perf_counter() - start, "diverged": 0, **record["metrics"]}

def cell(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} ± {spread:.2g}" if len(values) > 1 else f"{mean:.3g}"

def table(rows: list[tuple[str, str, list[dict]]]) -> str:
    columns = DIGITS_COLUMNS + TOY_COLUMNS
    header = ["graph", "profile", "diverged", "steps", "seconds"] + [name for name, _ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for graph, profile, results in rows:
        cells = [graph, profile, f"{sum(r['diverged'] for r in results)}/{len(results)}",
                 cell([r["steps"] for r in results]), cell([r["seconds"] for r in results])]
        cells += [cell([r.get(key) for r in results]) for _, key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=120, help="wall-clock seconds of training per run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--graphs", nargs="*", default=sorted(p.stem for p in GRAPHS.glob("*.yaml")))
    parser.add_argument("--profiles", nargs="*", default=["default", "toy2d"])
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        rows = []
        for graph in args.graphs:
            available = yaml.safe_load((GRAPHS / f"{graph}.yaml").read_text()).get("profiles", {})
            for profile in [p for p in args.profiles if p in available]:
                results = [run_once(graph, profile, seed, args.budget, root) for seed in range(args.seeds)]
                rows.append((graph, profile, results))
                print(f"done: {graph} / {profile}", flush=True)
        print()
        print(table(rows))

if __name__ == "__main__":
    main()
