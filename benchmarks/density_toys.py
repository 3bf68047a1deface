"""Density estimation on every embedded 2-D toy and its sharper variant: a graph's toy2d profile as
shipped against a hand-written persistent-CD loop with the same budget, side by side.

    python benchmarks/density_toys.py --graphs igebm improved_cd cooperative --jobs 2

Each row trains for 2000 steps at batch 256 (the profiles' budget) on one toy, selected with
``--set data.type=...`` (and the sharper variant's smaller noise); every result is the exact grid
KL(data || exp(-E)) of ``ebmgraph eval``'s density metric on [-4, 4]^2. The hand-written loop is
forty lines of plain torch: an MLP energy (3 hidden layers of 128, SiLU), a 10,000-sample buffer
(uniform on [-4, 4]^2, samples written back to the slots drawn, 5 % re-initialized), 20 Langevin
steps x <- x - a grad E + sqrt(2a) xi with a = 0.01 (temperature 1), CD with alpha (E+^2 + E-^2),
alpha = 0.1, Adam at 1e-3. The 8-gaussian rows are also run over ``--seeds`` seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import attrs
import torch

from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DivergenceError
from ebmgraph.eval.density2d import Grid, evaluate_2d
from ebmgraph.nodes.toys import TOY_TYPES
from ebmgraph.runs.runner import Runner
from ebmgraph.store.run_files import EVAL_FILE
from tables import mean_and_spread

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
SHARP = {  # the sharper variant of each toy: smaller noise (the checkerboard has none)
    "eight_gaussians": {"scale": 2.0, "noise": 0.1}, "two_spirals": {"noise": 0.05}, "rings": {"noise": 0.04},
    "moons": {"noise": 0.1}, "pinwheel": {"radial_std": 0.15, "tangential_std": 0.05},
}
STEPS, BATCH = 2000, 256


def variants() -> list[tuple[str, dict]]:
    """(toy, its parameters) for every toy as embedded and every sharper variant."""
    return [(toy, {}) for toy in TOY_TYPES] + list(SHARP.items())


def graph_row(graph: str, toy: str, params: dict, seed: int, run_dir: Path) -> float | None:
    """KL(data || model) of ``graph``'s toy2d profile trained on the toy."""
    torch.set_num_threads(1)
    sets = [f"data.type={toy}", f"seed={seed}", "train.progress=false", f"train.steps={STEPS}"]
    sets += [f"data.{key}={value}" for key, value in params.items()]
    try:
        Runner(load_graph(GRAPHS / f"{graph}.yaml", "toy2d", tuple(sets)), run_dir).run()
    except DivergenceError:
        return None
    return json.loads((run_dir / EVAL_FILE).read_text())["metrics"]["kl_data_model"]


def hand_row(toy: str, params: dict, seed: int, run_dir: Path) -> float:
    """KL(data || model) of the hand-written persistent-CD loop on the toy."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    target = TOY_TYPES[toy](**params)
    generator = torch.Generator().manual_seed(seed)
    energy = torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128), torch.nn.SiLU(),
                                 torch.nn.Linear(128, 128), torch.nn.SiLU(), torch.nn.Linear(128, 1))
    optimizer = torch.optim.Adam(energy.parameters(), lr=1e-3)
    buffer = torch.rand(10_000, 2) * 8 - 4
    a = 0.01
    for _ in range(STEPS):
        data = target.sample(BATCH, generator).float()
        slots = torch.randint(len(buffer), (BATCH,))
        x = buffer[slots].clone()
        fresh = torch.rand(BATCH) < 0.05
        x[fresh] = torch.rand(int(fresh.sum()), 2) * 8 - 4
        for _ in range(20):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
            x = (x - a * grad + math.sqrt(2 * a) * torch.randn_like(x)).detach()
        buffer[slots] = x
        positive, negative = energy(data).squeeze(1), energy(x).squeeze(1)
        loss = positive.mean() - negative.mean() + 0.1 * (positive.pow(2) + negative.pow(2)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return evaluate_2d(toy, attrs.asdict(target), Grid(-4.0, 4.0, 200), energy=energy)["kl_data_model"]


def label(toy: str, params: dict) -> str:
    return toy + (" (" + ", ".join(f"{k} {v}" for k, v in params.items()) + ")" if params else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", nargs="*", default=["igebm", "improved_cd", "cooperative"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the 8-gaussian rows")
    parser.add_argument("--toy-seeds", type=int, default=1, help="seeds of every other row")
    parser.add_argument("--toys", nargs="*", default=list(TOY_TYPES), choices=list(TOY_TYPES),
                        help="rows of these toys only (both variants)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings side by side (one thread each)")
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--no-hand", dest="hand", action="store_false", help="leave out the hand-written loop")
    args = parser.parse_args()
    columns = [*args.graphs, *(["hand-written loop"] if args.hand else [])]
    with tempfile.TemporaryDirectory() as scratch, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        root = Path(args.out or scratch)
        jobs = {}
        rows = [(toy, params) for toy, params in variants() if toy in args.toys]
        for row, (toy, params) in enumerate(rows):
            seeds = range(args.seeds if toy == "eight_gaussians" and not params else args.toy_seeds)
            for seed in seeds:
                for graph in args.graphs:
                    jobs[(row, graph, seed)] = pool.submit(graph_row, graph, toy, params, seed,
                                                           root / f"{graph}-{row}-{seed}")
                if args.hand:
                    jobs[(row, columns[-1], seed)] = pool.submit(hand_row, toy, params, seed,
                                                                 root / f"hand-{row}-{seed}")
        lines = [f"| toy ({STEPS} steps, batch {BATCH}) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for row, (toy, params) in enumerate(rows):
            cells = []
            for column in columns:
                values = [job.result() for (r, c, _), job in jobs.items() if r == row and c == column]
                cells.append(mean_and_spread(values, ".3f") if len(values) > 1 else
                             ("diverged" if values[0] is None else f"{values[0]:.3f}"))
            lines.append(f"| {label(toy, params)} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    print("\nKL(data ‖ exp(-E)) on the grid:\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
