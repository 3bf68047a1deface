"""What each setting of graphs/igebm.yaml's toy2d profile costs in density estimation on eight
gaussians: the profile as shipped, then one setting at a time put back to its value before the
profile estimated densities, then all of them at once.

    python benchmarks/ablation_toy2d.py --steps 2000 --seeds 3 --jobs 2

Columns: the exact grid KL(data || exp(-E)) and KL(model || data) of ``ebmgraph eval``, and the
histogram KL of the bank's samples beside its floor (as many exact draws). Mean ± std over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DivergenceError
from ebmgraph.runs.runner import Runner
from ebmgraph.store.run_files import EVAL_FILE
from tables import ablation_arguments, ablation_table

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "igebm.yaml"
COLD = ("nodes.negatives.eta=null", "nodes.negatives.step_size=0.05", "nodes.negatives.noise=0.1")
BEFORE = {  # the settings before the profile estimated densities, one --set group each
    "temperature 0.1 (a 0.05, b 0.1)": COLD,
    "alpha 1": ("losses.regularizer.alpha=1.0",),
    "reservoir bank writes": ("nodes.bank.write=reservoir",),
    "Adam beta1 0": ("optimizers.energy_optimizer.betas=[0.0,0.999]",),
    "lr 1e-3": ("optimizers.energy_optimizer.lr=0.001",),
    "30 chain steps": ("nodes.negatives.steps=30",),
}
ROWS = {"toy2d as shipped": (), **{f"… with {name}": sets for name, sets in BEFORE.items()},
        "all of them (the profile before)": tuple(s for sets in BEFORE.values() for s in sets)}


def run_row(*arguments) -> dict:
    """(--set values..., seed, steps, run directory): the row's evaluation."""
    *sets, seed, steps, run_dir = arguments
    torch.set_num_threads(1)
    spec = load_graph(GRAPH, "toy2d", (*sets, f"seed={seed}", f"train.steps={steps}", "train.progress=false"))
    try:
        Runner(spec, run_dir).run()
    except DivergenceError:
        return {"diverged": True}
    metrics = json.loads((run_dir / EVAL_FILE).read_text())["metrics"]
    return {"diverged": False, **{key: metrics[key] for key in ("kl_data_model", "kl_model_data", "kl_data_samples",
                                                               "kl_data_samples_floor")}}


def main() -> None:
    args = ablation_arguments(__doc__, ROWS, steps=2000)
    print("\n" + ablation_table(args, ROWS, run_row, [
        ("KL(data‖model)", "kl_data_model", ".3f"), ("KL(model‖data)", "kl_model_data", ".3f"),
        ("KL(data‖samples)", "kl_data_samples", ".3f"), ("its floor", "kl_data_samples_floor", ".3f")]))


if __name__ == "__main__":
    main()
