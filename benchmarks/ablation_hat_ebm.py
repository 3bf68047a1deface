"""Appendices F and H of Hill et al. (2022) in miniature on digits, with cooperative learning alongside.

    python benchmarks/ablation_hat_ebm.py --steps 500 --seeds 3 --jobs 2

Rows: graphs/hat_ebm.yaml as shipped (the generator fits the historical bank), its ``current``
profile (the generator fits this step's samples: Figure 4's "Hat EBM (current)"), its
``no_residual`` profile (eq. 13, U(z) = H(G(z)): Figure 5), and graphs/cooperative.yaml (Xie et
al. 2018, no batch norm: Figure 4's first column). Each row trains for the same number of
updates (Figure 4 compares samples after 500) and is evaluated by its graph's eval section:
FD of 500 fresh samples against the digits, and the classes the digits classifier finds among
them (modes covered of 10, class entropy). Mean ± std over seeds. ``--jobs`` runs that many
trainings side by side, one torch thread each.
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

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
ROWS = {  # name: (graph, profile)
    "Hat EBM, historical bank (shipped)": ("hat_ebm", None),
    "Hat EBM, current samples (appendix F)": ("hat_ebm", "current"),
    "Hat EBM, no residual (appendix H, eq. 13)": ("hat_ebm", "no_residual"),
    "cooperative learning (no batch norm)": ("cooperative", None),
}


def run_row(graph: str, profile: str | None, seed: int, steps: int, run_dir: Path) -> dict:
    torch.set_num_threads(1)
    spec = load_graph(GRAPHS / f"{graph}.yaml", profile, (f"seed={seed}", f"train.steps={steps}",
                                                          "train.progress=false"))
    try:
        Runner(spec, run_dir).run()
    except DivergenceError:
        return {"diverged": True}
    metrics = json.loads((run_dir / EVAL_FILE).read_text())["metrics"]
    return {"diverged": False, "fd": metrics["fd"], "modes": metrics["modes_covered"],
            "entropy": metrics["class_entropy"]}


def main() -> None:
    args = ablation_arguments(__doc__, ROWS, steps=500)
    print("\n" + ablation_table(args, ROWS, run_row, [("FD", "fd", ".1f"), ("modes covered (of 10)", "modes", ".1f"),
                                                     ("class entropy (max 2.30)", "entropy", ".2f")]))


if __name__ == "__main__":
    main()
