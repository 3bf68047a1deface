"""Composing trained energies: train short-run EBMs on two toy distributions, then sample the
product of experts exp(-(E_gaussians + w E_rings)) with the first run's Langevin kernel: the
chains settle where both models put mass (the eight gaussians' modes near the rings).

    python examples/compose.py runs/compose [--steps 2000] [--weight 0.5]

The same from the shell: ``ebmgraph sample --energy RUN_A --energy RUN_B:0.5``.
"""

import argparse
from pathlib import Path

import ebmgraph


def train(out: Path, data: str, steps: int, tiny: bool) -> ebmgraph.Run:
    graph = ebmgraph.load("graphs/short_run.yaml", profile="toy2d")
    graph.data.type = data                                       # eight_gaussians or rings
    graph.train.progress = False
    if tiny:
        graph.update({"nodes.negatives.steps": 3, "eval.n": 64, "eval.steps": 3})
    return graph.run(out / data, steps=steps)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the two runs")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--weight", type=float, default=0.5, help="weight of the rings energy")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (the test suite's)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    gaussians = train(out, "eight_gaussians", args.steps, args.tiny)
    rings = train(out, "rings", args.steps, args.tiny)
    paths = gaussians.sample(n=64 if args.tiny else 2000, steps=3 if args.tiny else 200,
                             out=out / "composed.png", compose=[(rings, args.weight)])
    print("\n".join(map(str, paths)))
    return paths


if __name__ == "__main__":
    main()
