"""Cells of the benchmark tables (mean ± sample standard deviation over seeds) and the ablations' runs and tables."""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def mean_and_spread(values: list[float], digits: str) -> str:
    """``mean ± std`` formatted with ``digits`` (e.g. '.2f'); '–' when no value is known."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{digits}} ± {spread:{digits}}"


def ablation_arguments(description: str, rows: dict, steps: int) -> argparse.Namespace:
    """The command line every ablation takes: --steps, --seeds, --jobs, --rows, --out."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=steps, help="training iterations per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="trainings side by side (one thread each)")
    parser.add_argument("--rows", nargs="*", default=list(rows), choices=list(rows))
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    return parser.parse_args()


def ablation_table(args: argparse.Namespace, rows: dict, run_row, columns: list[tuple[str, str, str]]) -> str:
    """Run ``run_row(*rows[name], seed, steps, run_dir)`` for every row and seed (``args.jobs`` at
    a time, in spawned processes) and return the markdown table: per row, ``mean ± std`` over the
    seeds that did not diverge of each (title, result key, format) column, and the diverged count."""
    with tempfile.TemporaryDirectory() as scratch, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        root = Path(args.out or scratch)
        jobs = {(name, seed): pool.submit(run_row, *rows[name], seed, args.steps, root / f"row{row}-seed{seed}")
                for row, name in enumerate(args.rows) for seed in range(args.seeds)}
        lines = [f"| row ({args.steps} steps, {args.seeds} seeds) | " + " | ".join(t for t, _, _ in columns)
                 + " | diverged |", "|---" * (len(columns) + 2) + "|"]
        for name in args.rows:
            results = [jobs[(name, seed)].result() for seed in range(args.seeds)]
            kept = [r for r in results if not r["diverged"]]
            cells = [mean_and_spread([r[key] for r in kept], digits) for _, key, digits in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(results) - len(kept)}/{len(results)} |")
            print(f"done: {name}", flush=True)
    return "\n".join(lines)
