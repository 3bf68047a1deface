"""Work on a run directory: restore the run, draw fresh samples (``ebmgraph sample``), evaluate
(``ebmgraph eval`` and the runner's periodic evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

from ebmgraph.engine.program import Program
from ebmgraph.errors import DataError, GraphError
from ebmgraph.spec.dump import to_dict
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.store.checkpoint_dir import CHECKPOINTS, has_checkpoint
from ebmgraph.eval.composition import WeightedEnergy
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.engine.load import load_graph
from ebmgraph.store.checkpoint import load_checkpoint
from ebmgraph.store.run_files import EVAL_FILE, EVAL_LOG, EVAL_PNG, GRAPH_FILE, SAMPLES_DIR
from ebmgraph.viz.grids import save_samples_png
from ebmgraph.viz.trajectory import save_trajectory_png


def require_checkpoint(run_dir: Path) -> None:
    """A run to resume must hold its checkpoint: never start it over (its metrics would be lost)."""
    if not has_checkpoint(run_dir):
        raise DataError(f"run directory '{run_dir}' has no checkpoint in {CHECKPOINTS}/: nothing to resume from; "
                        "refusing to start it over (start a new run with --out instead)")


def refuse_other_graph(run_dir: Path, spec: GraphSpec) -> None:
    """A new run may continue in ``run_dir`` only if it holds nothing or a run of the same graph
    (``train`` and ``eval`` settings aside): another graph's run is never overwritten."""
    path = run_dir / GRAPH_FILE
    if not path.is_file():
        return
    try:
        held = load_graph(path)
    except (GraphError, DataError) as error:
        raise DataError(f"--out '{run_dir}' holds a run whose {GRAPH_FILE} cannot be read ({error}); choose another "
                        "--out") from None
    ours, theirs = to_dict(spec), to_dict(held)
    if any(ours.get(key) != theirs.get(key) for key in set(ours) | set(theirs) if key not in ("train", "eval")):
        raise DataError(f"--out '{run_dir}' holds a run of another graph ('{held.name}'); it is left untouched: choose "
                        f"another --out, or continue that run with --resume {run_dir}")


def restore(run_dir: Path, device: str | None = None) -> tuple[Program, int]:
    """The run's program with its last checkpoint loaded, and the checkpoint's step."""
    program = Program(load_graph(run_dir / GRAPH_FILE), device or "cpu")
    return program, load_checkpoint(run_dir, program)


def composed_energy(program: Program, run_dir: Path, others: list[tuple[Path, float]], weight: float = 1.0,
                    device: str | None = None) -> tuple[str, WeightedEnergy]:
    """(description, module) of ``weight`` times the run's evaluation energy plus each other run's,
    weighted; the runs must model samples of the same shape."""
    own_evaluation = Evaluation(program)
    names, energies, weights = [f"{run_dir}:{own_evaluation.energy_name}"], [own_evaluation.energy], [weight]
    for other, other_weight in others:
        other_program, _ = restore(other, device)
        shape, own = other_program.nodes["data"].sample_shape, program.nodes["data"].sample_shape
        if shape != own:
            raise DataError(f"run '{other}' models samples of shape {shape}, run '{run_dir}' of shape {own}: "
                            "only energies on the same samples compose")
        evaluation = Evaluation(other_program)
        names.append(f"{other}:{evaluation.energy_name}")
        energies.append(evaluation.energy)
        weights.append(other_weight)
    composed = WeightedEnergy(energies, weights)
    return composed.describe(names), composed


def sample_run(run_dir: Path, n: int | None = None, steps: int | None = None, out: str | None = None,
               device: str | None = None, trajectory: bool = False, weight: float = 1.0,
               compose: list[tuple[Path, float]] = ()) -> list[Path]:
    """Fresh chains as a PNG grid; with ``trajectory`` also a strip of chains over their steps.
    With ``compose`` (other runs and their weights), the chains sample the sum of ``weight`` times
    this run's energy and theirs, with this run's kernel and initial states."""
    program, _ = restore(run_dir, device)
    energy = composed_energy(program, run_dir, list(compose), weight, device) if compose or weight != 1.0 else None
    evaluation = Evaluation(program, energy)
    samples = evaluation.draw(n, steps)
    chain_steps = evaluation.chain_steps(steps)
    stem = "composed" if energy else "fresh"
    path = Path(out) if out else run_dir / SAMPLES_DIR / f"{stem}_{chain_steps}steps.png"
    save_samples_png(samples.cpu(), path, reference=program.plot_reference(),
                     title=f"{program.spec.name}: {len(samples)} fresh chains, {chain_steps} steps "
                           f"from {program.spec.eval.init} noise ({evaluation.energy_name})")
    if not trajectory:
        return [path]
    strip = path.with_name(path.stem + "_trajectory.png")
    save_trajectory_png(evaluation, strip, steps=chain_steps)
    return [path, strip]


def metric_summary(metrics: dict) -> str:
    """One line of an evaluation's scalar metrics; FID and IS name the sample counts they used."""
    counts = {"fid": lambda: f" ({metrics['fid_samples']} samples vs {metrics['fid_reference']} training images)",
              "inception_score": lambda: f" ({metrics['inception_score_samples']} samples)"}
    shown = [f"{k}={v:.4g}{counts[k]() if k in counts else ''}" for k, v in metrics.items() if isinstance(v, float)]
    return ", ".join(shown) or "no metrics (eval.metrics is empty)"


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
