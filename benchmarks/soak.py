"""Soak: one long toy2d run (graphs/short_run.yaml, profile toy2d) with a checkpoint every 100
steps, watching the process's resident memory and the run directory's size as it trains.

    python benchmarks/soak.py --steps 5000 --checkpoint-every 100

Prints the resident memory at the end of warm-up (the first ``--warmup`` of the steps) and its
peak after it while training (growth must stay under 5 %; the final evaluation, after the last
checkpoint, is left out), the resident memory at every tenth of the run, the size of checkpoints/ over the run (bounded: two
checkpoints are kept) and of the whole run directory, and the checkpoint directories at the end.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from ebmgraph.engine.load import load_graph
from ebmgraph.runs.runner import Runner

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "short_run.yaml"


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def directory_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the steps before memory is compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "soak"
        spec = load_graph(GRAPH, "toy2d", (f"train.steps={args.steps}", f"train.checkpoint_every={args.checkpoint_every}",
                                           f"train.sample_every={args.steps}", "train.progress=false",
                                           "eval.n=500"))
        samples: list[tuple] = []  # (checkpoint step, resident MB, checkpoints MB, run directory MB)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                steps = sorted(run_dir.glob("checkpoints/step_*"))
                step = int(steps[-1].name.split("_")[1]) if steps else 0
                samples.append((step, resident_mb(), directory_mb(run_dir / "checkpoints"), directory_mb(run_dir)))

        watcher = threading.Thread(target=watch, daemon=True)
        start = time.perf_counter()
        watcher.start()
        Runner(spec, run_dir).run()
        done.set()
        watcher.join()
        seconds = time.perf_counter() - start
        warm = [s for s in samples if s[0] <= args.warmup * args.steps]
        after = [s for s in samples if args.warmup * args.steps < s[0] < args.steps]
        base, peak = warm[-1][1], max(s[1] for s in after)
        sizes, totals = [s[2] for s in samples], [s[3] for s in samples]
        kept = len(list(run_dir.glob("checkpoints/step_*")))
        print(f"{args.steps} steps in {seconds:.0f} s, a checkpoint every {args.checkpoint_every}")
        print(f"resident memory: {base:.1f} MB after warm-up (step {warm[-1][0]}), peak {peak:.1f} MB after it: "
              f"growth {100 * (peak - base) / base:+.2f} % (bound 5 %)")
        tenths = {s[0]: s[1] for s in samples if s[0] % max(args.steps // 10, 1) == 0}
        print("resident MB by step: " + ", ".join(f"{step}: {mb:.0f}" for step, mb in sorted(tenths.items())))
        print(f"checkpoints/: {sizes[len(sizes) // 5]:.2f} MB at a fifth of the run, {max(sizes):.2f} MB at most, "
              f"{sizes[-1]:.2f} MB at the end; {kept} checkpoint directories kept")
        print(f"whole run directory (metrics.jsonl grows with the log): {totals[-1]:.2f} MB at the end")


if __name__ == "__main__":
    main()
