"""Speed of ebmgraph against hand-written PyTorch, measured side by side in one process.

    python benchmarks/speed.py                      # every table, one thread (about 25 minutes here)
    python benchmarks/speed.py --tables langevin steps --repeats 5 --device cuda

Tables (markdown, times in milliseconds as median (min–max) over ``--repeats`` interleaved
rounds: every variant runs once per round, so a slow spell of the machine hits all alike;
ratios as the median of the two timings' ratio within a round, with its interquartile range):

- ``langevin``: one Langevin step of ebmgraph's kernel (eager and ``compile: true``) against the
  eager limit (one forward and one input-backward, parameters frozen) and the naive loop
  (parameters left requiring grad), for the 2-D MLP, the digits conv energy and a conv energy
  on 3x32x32 images, batch 64 and 256. The kernel and the limit draw the same noise, and their
  chains are checked equal first.
- ``steps``: each graph's compiled step against the same algorithm written by hand
  (benchmarks/speed_steps.py), equal losses asserted first; peak memory of both.
- ``scaling``: the kernel's time against batch, chain length and image size; fitted slope and
  intercept, and growth faster than linear flagged.
- ``banks``: bank draw + write as a fraction of the igebm and improved_cd steps; saving a
  10,000 x 3 x 32 x 32 bank to HDF5 in several layouts.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from functools import partial

import numpy as np
import torch

from speed_banks import bank_fraction, cifar_bank, hdf5_rows
from speed_langevin import ENERGIES, build_energy, chains
from speed_steps import GRAPHS, assert_equal_losses, engine_and_hand, engine_step
from speed_timing import interleaved, peak_memory, ratio_cell, seconds_cell, table

#: A power-law exponent above this flags growth faster than linear (timing noise reaches about 0.1).
SUPER_LINEAR = 1.15
#: (Langevin steps per timed chain, rounds per --repeats): enough work per call to time, and more
#: rounds where a call is short (sub-millisecond steps are the noisiest).
CHAIN_STEPS = {"2-D MLP": (100, 3), "digits conv": (20, 3), "3x32x32 conv": (3, 2)}


def langevin_table(args) -> str:
    rows = []
    for name in ENERGIES:
        for batch in (64, 256):
            energy, shape = build_energy(name, args.device)
            steps, rounds = CHAIN_STEPS[name]
            work = chains(energy, batch, shape, steps, args.device, compiled=not args.no_compile)
            torch.testing.assert_close(work["ebmgraph"](), work["eager limit"](), rtol=0, atol=0)
            times = interleaved(work, args.repeats * rounds, args.device)
            per_step = {k: [t / steps for t in v] for k, v in times.items()}
            limit = per_step["eager limit"]
            row = [name, str(batch)] + [seconds_cell(per_step[k]) for k in work]
            row += [ratio_cell(per_step[k], limit) for k in work if k != "eager limit"]
            rows.append(row)
            print(f"langevin: {name}, batch {batch} done", flush=True)
    variants = list(work)
    header = (["energy", "batch"] + [f"{k} (ms/step)" for k in variants]
              + [f"{k} / limit" for k in variants if k != "eager limit"])
    return table(header, rows)


def _engine_runner(graph: str):
    program, _ = engine_and_hand(graph)
    counter = iter(range(10**9))
    return lambda: engine_step(program, next(counter))


def _hand_runner(graph: str):
    _, hand = engine_and_hand(graph)
    counter = iter(range(10**9))
    return lambda: hand(next(counter))


def steps_table(args) -> str:
    rows = []
    for graph in GRAPHS:
        program, hand = engine_and_hand(graph)
        assert_equal_losses(program, hand, args.check_steps)
        step = iter(range(args.check_steps, 10**9))
        hand_step = iter(range(args.check_steps, 10**9))
        times = interleaved({"engine": lambda: engine_step(program, next(step)),
                             "hand": lambda: hand(next(hand_step))}, args.step_repeats, args.device)
        memory = [peak_memory(partial(runner, graph), device=str(args.device)) for runner in (_engine_runner,
                                                                                               _hand_runner)]
        rows.append([graph, seconds_cell(times["engine"]), seconds_cell(times["hand"]),
                     ratio_cell(times["engine"], times["hand"]), f"{memory[0]:.1f}", f"{memory[1]:.1f}",
                     f"{memory[0] / memory[1]:.2f}" if memory[1] > 0 else "–"])
        print(f"steps: {graph} done", flush=True)
    return table(["graph (default profile)", "compiled step (ms)", "by hand (ms)", "step / hand",
                  "peak MiB, engine", "peak MiB, hand", "memory / hand"], rows)


def _fit(sizes: list[float], seconds: list[float]) -> tuple[float, float, float]:
    """(slope, intercept) of seconds = intercept + slope * size, and the exponent b of the power law
    seconds ~ size^b fitted to the larger half of the sizes (1: linear; above 1.15 flagged)."""
    slope, intercept = np.polyfit(sizes, seconds, 1)
    upper = len(sizes) // 2
    exponent, _ = np.polyfit(np.log(sizes[upper:]), np.log(seconds[upper:]), 1)
    return float(slope), float(intercept), float(exponent)


def scaling_table(args) -> str:
    """The kernel on the digits conv energy: ms per step against batch (10 steps, 8x8), per chain
    against steps (batch 64, 8x8), per step against pixels (batch 64, 5 steps)."""
    axes = {"batch": ([16, 32, 64, 128, 256], lambda n: (n, 10, 8)),
            "Langevin steps": ([10, 25, 50, 100], lambda n: (64, n, 8)),
            "image size (pixels)": ([8, 16, 24, 32], lambda n: (64, 5, n))}
    rows = []
    for axis, (values, setting) in axes.items():
        medians = []
        for value in values:
            batch, steps, size = setting(value)
            energy, shape = build_energy("digits conv", args.device, image_size=size)
            work = {"ebmgraph": chains(energy, batch, shape, steps, args.device, compiled=False)["ebmgraph"]}
            seconds = statistics.median(interleaved(work, args.scaling_repeats, args.device, warmup=1)["ebmgraph"])
            medians.append(seconds / (1 if axis == "Langevin steps" else steps))
        sizes = [v * v if axis.startswith("image") else v for v in values]
        slope, intercept, exponent = _fit(sizes, medians)
        unit = "ms per chain" if axis == "Langevin steps" else "ms per step"
        cells = ", ".join(f"{v}: {m * 1e3:.1f}" for v, m in zip(values, medians))
        rows.append([axis, unit, cells, f"{slope * 1e3:.4g}", f"{intercept * 1e3:.3g}", f"{exponent:.2f}",
                     "super-linear" if exponent > SUPER_LINEAR else "no"])
        print(f"scaling: {axis} done", flush=True)
    return table(["axis", "unit", "times", "slope (ms per unit)", "intercept (ms)", "exponent (larger half)",
                  "flag"], rows)


def banks_tables(args) -> str:
    rows = []
    for graph in ("igebm", "improved_cd"):
        program, _ = engine_and_hand(graph)
        bank_fraction(program, 160)  # past the first draws from an empty bank, and past a full one (10,000)
        bank, step = bank_fraction(program, args.bank_steps, first_step=160)
        rows.append([graph, f"{bank * 1e3:.2f}", f"{step * 1e3:.1f}", f"{100 * bank / step:.2f} %"])
        print(f"banks: {graph} done", flush=True)
    fraction = table(["graph (default profile)", "bank draw + write (ms/step)", "step (ms)", "fraction"], rows)
    saves = [[name, f"{seconds:.2f}", f"{size:.1f}"] for name, seconds, size in hdf5_rows(cifar_bank())]
    return fraction + "\n\nSaving a 10,000 x 3 x 32 x 32 float32 bank (uniform noise):\n\n" + table(
        ["layout", "seconds", "MiB"], saves)


TABLES = {"langevin": langevin_table, "steps": steps_table, "scaling": scaling_table, "banks": banks_tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per measurement (x3 for the MLP and "
                                                               "digits energies, x2 for the 3x32x32 one)")
    parser.add_argument("--step-repeats", type=int, default=25, help="interleaved rounds of the whole steps")
    parser.add_argument("--scaling-repeats", type=int, default=3)
    parser.add_argument("--check-steps", type=int, default=3, help="steps whose losses must agree before timing")
    parser.add_argument("--bank-steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--no-compile", action="store_true", help="leave out the compile: true rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.device}, "
          f"{args.threads} thread(s), {args.repeats} repeats\n", flush=True)
    for name in args.tables:
        print(f"\n## {name}\n\n{TABLES[name](args)}\n", flush=True)


if __name__ == "__main__":
    main()
