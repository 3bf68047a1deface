"""Work on a run directory: restore the run, draw fresh samples (``ebmgraph sample``), evaluate
(``ebmgraph eval`` and the runner's periodic evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

from ebmgraph.engine.program import Program
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.engine.load import load_graph
from ebmgraph.store.checkpoint import load_checkpoint
from ebmgraph.store.run_files import EVAL_FILE, EVAL_LOG, EVAL_PNG, GRAPH_FILE, SAMPLES_DIR
from ebmgraph.viz.grids import save_samples_png
from ebmgraph.viz.trajectory import save_trajectory_png


def restore(run_dir: Path, device: str | None = None) -> tuple[Program, int]:
    """The run's program with its last checkpoint loaded, and the checkpoint's step."""
    program = Program(load_graph(run_dir / GRAPH_FILE), device or "cpu")
    return program, load_checkpoint(run_dir, program)


def sample_run(run_dir: Path, n: int | None = None, steps: int | None = None, out: str | None = None,
               device: str | None = None, trajectory: bool = False) -> list[Path]:
    """Fresh chains as a PNG grid; with ``trajectory`` also a strip of chains over their steps."""
    program, _ = restore(run_dir, device)
    evaluation = Evaluation(program)
    samples = evaluation.draw(n, steps)
    chain_steps = evaluation.chain_steps(steps)
    path = Path(out) if out else run_dir / SAMPLES_DIR / f"fresh_{chain_steps}steps.png"
    save_samples_png(samples.cpu(), path, reference=program.plot_reference(),
                     title=f"{program.spec.name}: {len(samples)} fresh chains, {chain_steps} steps "
                           f"from {program.spec.eval.init} noise ({evaluation.energy_name})")
    if not trajectory:
        return [path]
    strip = path.with_name(path.stem + "_trajectory.png")
    save_trajectory_png(evaluation, strip, steps=chain_steps)
    return [path, strip]


def write_evaluation(program: Program, run_dir: Path, step: int, n: int | None = None) -> dict:
    """Evaluate, write eval.json and the samples PNG, append the record to eval.jsonl."""
    record, samples = Evaluation(program).run(n)
    record = {"step": step, **record}
    (run_dir / EVAL_FILE).write_text(json.dumps(record, indent=2) + "\n")
    with (run_dir / EVAL_LOG).open("a") as log:
        log.write(json.dumps(record) + "\n")
    save_samples_png(samples[:program.spec.train.grid].cpu(), run_dir / EVAL_PNG, reference=program.plot_reference(),
                     title=f"{program.spec.name}: evaluation samples at step {step} ({record['energy']})")
    return record


def evaluate_run(run_dir: Path, n: int | None = None, device: str | None = None) -> dict:
    program, step = restore(run_dir, device)
    return write_evaluation(program, run_dir, step, n)
