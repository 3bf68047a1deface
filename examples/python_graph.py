"""Short-run MCMC (Nijkamp et al. 2019) on the bundled 8x8 digits, written in Python from scratch
with the builder instead of a graph file (graphs/short_run.yaml is the same algorithm).

    python examples/python_graph.py runs/python_graph [--steps 300] [--tiny]

Checks the graph, draws it to RUN_DIR/graph.png, trains it, draws fresh chains and prints the
evaluation.
"""

from __future__ import annotations

import argparse

import ebmgraph


def build() -> ebmgraph.Graph:
    graph = ebmgraph.Graph.new("python_short_run", seed=0, data={"type": "digits", "batch_size": 64})
    graph.add_model("energy", "conv_energy", channels=16, stages=2, activation="leaky_relu")
    graph.add_node("noise", "uniform_noise", like="data")  # x_0 ~ U[-1, 1]^D
    graph.add_node("negatives", "langevin", energy="energy", init="noise", steps=40, step_size=1.0, noise=0.01)
    graph.add_node("positive_energy", "evaluate_energy", energy="energy", x="data")
    graph.add_node("negative_energy", "evaluate_energy", energy="energy", x="negatives")
    graph.add_loss("cd", "contrastive_divergence", positive="positive_energy", negative="negative_energy")
    graph.add_optimizer("energy_optimizer", "adam", models=["energy"], losses=["cd"], lr=3e-4, betas=[0.9, 0.999])
    graph.set("eval.kernel", "negatives")
    return graph


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="run directory")
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--tiny", action="store_true", help="a small model, batch and chains (seconds)")
    args = parser.parse_args(argv)
    graph = build()
    if args.tiny:
        graph.update({"data.batch_size": 16, "models.energy.channels": 4, "nodes.negatives.steps": 3,
                      "eval.n": 32, "train.progress": False})
    graph.check()  # references, types, cycles and shapes; a GraphError lists every problem
    print(graph.draw(f"{args.out}/graph.png"), end="")
    run = graph.run(args.out, steps=args.steps)  # evaluates at the end, as the graph's eval section says
    print("fresh chains:", *run.sample(n=64))
    print(", ".join(f"{key}={value:.4g}" for key, value in run.evaluation["metrics"].items()
                    if isinstance(value, float)))
    return run.evaluation


if __name__ == "__main__":
    main()
