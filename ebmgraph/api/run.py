"""``Run``: a run directory from Python: its metrics and evaluation, fresh samples, evaluating and
resuming from its last checkpoint (as ``ebmgraph sample``, ``eval`` and ``run --resume`` do)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ebmgraph.engine.load import load_graph
from ebmgraph.runs.run_dir import evaluate_run, sample_run
from ebmgraph.runs.runner import Runner
from ebmgraph.store.checkpoint_dir import StoredCheckpoint, checkpoints
from ebmgraph.store.run_files import EVAL_FILE, GRAPH_FILE, METRICS_FILE


class Run:
    """The run directory ``run_dir`` (it must hold the resolved graph, ``graph.yaml``)."""

    def __init__(self, run_dir: str | Path):
        self.directory = Path(run_dir)
        if not self.graph_file.is_file():
            raise FileNotFoundError(f"{self.directory}: not a run directory (it has no {GRAPH_FILE})")

    @property
    def graph_file(self) -> Path:
        """The run's resolved graph (``ebmgraph.load(run.graph_file)`` reads it as a Graph)."""
        return self.directory / GRAPH_FILE

    @property
    def metrics(self) -> list[dict]:
        """The records of ``metrics.jsonl``, one dict per logged step."""
        path = self.directory / METRICS_FILE
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def evaluation(self) -> dict | None:
        """The latest evaluation record (``eval.json``), or None before the first evaluation."""
        path = self.directory / EVAL_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def evaluate(self, n: int | None = None, device: str | None = None) -> dict:
        """Evaluate the last checkpoint as the graph's ``eval`` section says (``ebmgraph eval``)."""
        return evaluate_run(self.directory, n=n, device=device)

    def sample(self, n: int | None = None, steps: int | None = None, *, out: str | Path | None = None,
               device: str | None = None, trajectory: bool = False, weight: float = 1.0,
               compose: Iterable[tuple[Run | str | Path, float]] = ()) -> list[Path]:
        """Fresh chains from the trained energy as a PNG grid (``ebmgraph sample``); the paths written.
        With ``compose`` ((run, weight) pairs) the chains sample ``weight`` times this run's energy
        plus each run's weighted energy, with this run's kernel (``ebmgraph sample --energy``)."""
        others = [(Path(getattr(run, "directory", run)), other_weight) for run, other_weight in compose]
        return sample_run(self.directory, n=n, steps=steps, out=out, device=device,
                          trajectory=trajectory, weight=weight, compose=others)

    def resume(self, steps: int | None = None, device: str | None = None, *, from_step: int | None = None) -> Run:
        """Continue training exactly from the last checkpoint, or from the kept checkpoint of
        ``from_step`` (the later ones are removed), up to ``steps`` in all (``run --resume RUN_DIR[@STEP]``)."""
        overrides = () if steps is None else (f"train.steps={steps}",)
        Runner(load_graph(self.graph_file, None, overrides), self.directory, device, resume_step=from_step).run()
        return self

    def checkpoints(self) -> list[int]:
        """The steps of the checkpoints the run keeps, oldest first."""
        return [found.step for found in reversed(list(checkpoints(self.directory, digests=False)))
                if isinstance(found, StoredCheckpoint)]

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r})"


def open_run(run_dir: str | Path) -> Run:
    """The run in ``run_dir``, a folder written by ``ebmgraph run`` or ``Graph.run``."""
    return Run(run_dir)
