"""Tables 4 and 5 of Cui & Han (2023) in miniature on digits.

    python benchmarks/ablation_dual_mcmc.py --steps 400 --seeds 3

Table 4 (steps of the z-Langevin T_z): L=10 and L=30 start the posterior chains from noise
z ~ N(0, I) (no inference model: it is removed from the graph), Inf+L=10 starts them from the
inference model (the graph as shipped). Table 5 (steps of the x-Langevin T_x): 10, 20, 30 with
Inf+L=10. Each row: FD of the EBM's samples (generator init, then T_x; the graph's eval
protocol), reconstruction MSE of the test digits (z from the row's own inference procedure, then
g(z)), seconds per training iteration. Mean ± std over seeds, all runs on this machine in one go.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from ebmgraph.runs.runner import Runner
from ebmgraph.eval.reconstruction import reconstruct
from ebmgraph.engine.load import loads_graph
from ebmgraph.store.run_files import EVAL_FILE, METRICS_FILE
from tables import mean_and_spread as cell

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "dual_mcmc.yaml"


def without_inference_model(graph: dict) -> dict:
    """The graph with noise-initialized posterior chains: encoder, its losses and optimizer removed."""
    graph["nodes"]["noise_z"] = {"type": "prior_latent", "generator": "generator", "like": "data"}
    graph["nodes"]["revised_z"]["init"] = "noise_z"
    del graph["nodes"]["inferred_z"], graph["models"]["encoder"], graph["optimizers"]["encoder_optimizer"]
    del graph["losses"]["encoder_on_data"], graph["losses"]["encoder_on_samples"]
    return graph


ROWS = {  # name: (table, inference model initializes T_z, z steps, x steps)
    "L=10": ("4", False, 10, 30),
    "L=30": ("4", False, 30, 30),
    "Inf+L=10 (x steps 30)": ("4, 5", True, 10, 30),
    "x steps 10": ("5", True, 10, 10),
    "x steps 20": ("5", True, 10, 20),
}


def run_row(from_encoder: bool, z_steps: int, x_steps: int, seed: int, steps: int, root: Path) -> dict:
    graph = yaml.safe_load(GRAPH.read_text())
    if not from_encoder:
        graph = without_inference_model(graph)
    overrides = (f"seed={seed}", f"train.steps={steps}", "train.progress=false", f"nodes.revised_z.steps={z_steps}",
                 f"nodes.revised_x.steps={x_steps}", f"train.log_every={steps}")
    spec = loads_graph(yaml.safe_dump(graph, sort_keys=False), str(GRAPH), None, overrides)
    run_dir = root / f"{from_encoder}-{z_steps}-{x_steps}-{seed}"
    runner = Runner(spec, run_dir)
    runner.run()
    seconds = 1 / json.loads((run_dir / METRICS_FILE).read_text().splitlines()[-1])["steps_per_second"]
    fd = json.loads((run_dir / EVAL_FILE).read_text())["metrics"]["fd"]
    test = runner.program.nodes["data"].test_split()
    stages = reconstruct(runner.program, test, from_encoder=from_encoder, z_steps=z_steps, x_steps=0)
    mse = float((stages["posterior"].detach() - test).pow(2).mean())
    return {"fd": fd, "mse": mse, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="training iterations per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        lines = ["| row | table | FD | reconstruction MSE | s / iteration |", "|---|---|---|---|---|"]
        for name, (table, from_encoder, z_steps, x_steps) in ROWS.items():
            results = [run_row(from_encoder, z_steps, x_steps, seed, args.steps, root) for seed in range(args.seeds)]
            lines.append(f"| {name} | {table} | {cell([r['fd'] for r in results], '.2f')} | "
                         f"{cell([r['mse'] for r in results], '.4f')} | {cell([r['seconds'] for r in results], '.3f')} |")
            print(f"done: {name}", flush=True)
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
