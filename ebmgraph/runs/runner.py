"""The training loop: progress bar, metrics.jsonl, sample pictures, atomic checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ebmgraph.engine.plan_record import plan_record
from ebmgraph.engine.program import Program
from ebmgraph.eval.requirements import check_evaluation
from ebmgraph.runs.distributed import World, barrier
from ebmgraph.runs.health import KernelHealth
from ebmgraph.runs.tensorboard_log import TensorBoardLog, summary_writer_class
from ebmgraph.runs.threads import run_threads
from ebmgraph.runs.run_dir import metric_summary, write_evaluation
from ebmgraph.errors import DataError, DivergenceError
from ebmgraph.spec.dump import dumps
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.store.checkpoint import latest, load_checkpoint, save_checkpoint
from ebmgraph.store.rank_shards import on_any_rank
from ebmgraph.store.checkpoint_dir import (discard_after, has_checkpoint, has_checkpoint_of_step, prune, read_best,
                                           write_best)
from ebmgraph.spec.suggest import did_you_mean
from ebmgraph.version import __version__
from ebmgraph.store.atomic import atomic_path
from ebmgraph.store.run_files import (DIVERGENCE_FILE, EVAL_LOG, EVAL_PNG, GRAPH_FILE, METRICS_FILE, ORIGIN_FILE,
                                      PLAN_FILE, SAMPLES_DIR, STEP_FILE)
from ebmgraph.viz.grids import save_samples_png


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/name-YYYYmmdd-HHMMSS`` (with a suffix if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, suffix = base, 1
    while path.exists():
        path, suffix = Path(f"{base}-{suffix}"), suffix + 1
    return path


def _scalars(losses: dict[str, torch.Tensor], diagnostics: dict) -> dict[str, float]:
    """Tensors as floats (one transfer for all); Python numbers (e.g. learning rates) as they are."""
    values = {f"loss/{name}": value for name, value in losses.items()}
    values.update(diagnostics)
    names = [n for n, v in values.items() if isinstance(v, torch.Tensor)]
    stacked = torch.stack([values[n].detach().to("cpu", torch.float32) for n in names]) if names else torch.empty(0)
    tensors = dict(zip(names, stacked.tolist()))
    return {n: tensors[n] if n in tensors else float(v) for n, v in values.items()}


def _postfix(scalars: dict[str, float], kernels: list[str], marks: dict[str, str]) -> dict[str, str]:
    """Losses, E+/E-/gap, the lowest acceptance, the first kernel's gradient norm and each
    kernel's health mark (one mark when there is one kernel)."""
    shown = {k.removeprefix("loss/"): v for k, v in scalars.items() if k.startswith("loss/")}
    for key in ("E+", "E-", "gap"):
        match = next((v for k, v in scalars.items() if k.endswith("/" + key)), None)
        if match is not None:
            shown[key] = match
    acceptance = [v for k, v in scalars.items() if k.endswith("/acceptance")]
    if acceptance:
        shown["accept"] = min(acceptance)
    gradient = next((scalars[f"{kernel}/grad_norm"] for kernel in kernels if f"{kernel}/grad_norm" in scalars), None)
    if gradient is not None:
        shown["grad"] = gradient
    out = {k: f"{v:.4g}" for k, v in shown.items()}
    if marks:
        out["health"] = next(iter(marks.values())) if len(marks) == 1 else \
            " ".join(f"{node}:{mark}" for node, mark in marks.items())
    return out


def _step_of_record(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a line cut short by a crash while it was written."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _drop_records_after(path: Path, step: int) -> dict | None:
    """Forget metrics logged after the checkpoint a run resumes from (they will be logged again),
    and a last line a crash cut short; return the last record kept."""
    if not path.exists():
        return None
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if (logged := _step_of_record(line)) is not None and logged <= step]
    if len(kept) != len(lines):
        with atomic_path(path) as temporary:
            temporary.write_text("".join(kept))
    return json.loads(kept[-1]) if kept else None


class Runner:
    """Runs a Program for ``spec.train.steps`` steps in ``run_dir`` (continuing from its newest
    checkpoint, or from the checkpoint of ``resume_step``, when it holds one). In a data-parallel
    run (``world``: this process's rank among torchrun's workers) every rank trains and takes part
    in checkpoints; rank 0 alone writes the run's files, logs, pictures and evaluations."""

    def __init__(self, spec: GraphSpec, run_dir: str | Path, device: str | None = None,
                 resume_step: int | None = None, world: World = World()):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.resume_step = resume_step
        self.started_at = 0
        self.world = world
        if world.world_size > 1 and spec.train.keep_best:
            raise DataError("train.keep_best needs one process: the best checkpoint is chosen by rank 0's "
                            "evaluation while every rank writes its bank shard; run without --nproc, or drop keep_best")
        self.program = Program(spec, device, world.rank, world.world_size)
        check_evaluation(self.program.plan)
        self.health = KernelHealth()
        self.reference = self.program.plot_reference()
        self.last_record: dict | None = None
        if "tensorboard" in spec.train.log:
            summary_writer_class()  # a missing package stops the run before its first step
        self.tensorboard: TensorBoardLog | None = None

    def _write_static_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        origin = self.run_dir / ORIGIN_FILE
        if not origin.exists():  # a resumed run keeps the origin of the run it continues
            source = self.spec.source.file if self.spec.source else None
            origin.write_text(json.dumps({"graph_file": source, "profile": self.spec.profile,
                                          "ebmgraph": __version__, "started": time.strftime("%Y-%m-%d %H:%M:%S")},
                                         indent=2) + "\n")
        (self.run_dir / GRAPH_FILE).write_text(dumps(self.spec))
        (self.run_dir / STEP_FILE).write_text(self.program.source.text)
        (self.run_dir / PLAN_FILE).write_text(json.dumps(plan_record(self.program.plan)) + "\n")

    def _save_samples(self, samples: torch.Tensor | None, completed: int) -> None:
        if samples is None:
            return
        grid = samples[: self.spec.train.grid].detach().float().cpu()
        path = self.run_dir / SAMPLES_DIR / f"step_{completed:06d}.png"
        save_samples_png(grid, path, title=f"{self.spec.name}: step {completed}", reference=self.reference)
        if self.tensorboard:
            self.tensorboard.picture("samples", path, completed)

    def _evaluate(self, completed: int, bar) -> None:
        record = write_evaluation(self.program, self.run_dir, completed)
        bar.write(f"eval at step {completed}: {metric_summary(record['metrics'])}", file=sys.stderr)
        if "temperature_note" in record:
            bar.write(f"  note: {record['temperature_note']}", file=sys.stderr)
        if self.tensorboard:
            self.tensorboard.scalars({**record["metrics"], "step": completed}, prefix="eval/")
            self.tensorboard.picture("eval_samples", self.run_dir / EVAL_PNG, completed)
        if self.spec.train.keep_best:
            self._keep_if_best(record["metrics"], completed, bar)

    def _keep_if_best(self, metrics: dict, completed: int, bar) -> None:
        """Name this step's checkpoint (written now if the step has none) the best when
        ``train.keep_best``'s metric improved on ``best.json``'s."""
        train = self.spec.train
        metric, mode = train.keep_best, train.best_mode()
        if metric not in metrics:
            names = sorted(key for key, value in metrics.items() if isinstance(value, float))
            raise DataError(f"train.keep_best: the evaluation reports no metric '{metric}'"
                            f"{did_you_mean(metric, names)} (it reports: {', '.join(names)})")
        value, best = float(metrics[metric]), read_best(self.run_dir)
        if not math.isfinite(value) or (best is not None and best["metric"] == metric and
                                        (value >= best["value"] if mode == "min" else value <= best["value"])):
            return
        if not has_checkpoint_of_step(self.run_dir, completed):
            self._checkpoint(completed)
        write_best(self.run_dir, {"metric": metric, "mode": mode, "value": value, "step": completed})
        prune(self.run_dir, completed, train.keep_checkpoints)  # the best before is now an ordinary checkpoint
        bar.write(f"best {metric} so far ({value:.4g}): checkpoint of step {completed} kept", file=sys.stderr)

    def _log(self, metrics, bar, losses, ctx, completed: int, timing: list[float]) -> None:
        """One metrics.jsonl record; ``timing`` is [time, step] of the previous record."""
        now = time.perf_counter()
        scalars = _scalars(losses, ctx.diagnostics)
        scalars["steps_per_second"] = (completed - timing[1]) / max(now - timing[0], 1e-9)
        timing[:] = [now, completed]
        warnings = self.health.close_window(completed)
        for warning in warnings:
            bar.write(f"warning: {warning}", file=sys.stderr)
        record = {"step": completed, **scalars, **({"warnings": warnings} if warnings else {})}
        self.last_record = record
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        if self.tensorboard:
            self.tensorboard.scalars(record)
            self.tensorboard.histograms(ctx.histograms, completed)
            if warnings:
                self.tensorboard.text("warnings", warnings, completed)
        bar.set_postfix(_postfix(scalars, self.program.plan.kernels(), self.health.marks), refresh=False)

    def run(self) -> int:
        """Train until ``train.steps`` (or ``train.max_seconds``) with ``train.threads`` intra-op
        threads; returns the number of completed steps."""
        with run_threads(self.spec.train.threads) as (_, warning):
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            return self._run()

    def _run(self) -> int:
        train, leader = self.spec.train, self.world.leader
        start = load_checkpoint(self.run_dir, self.program, self.resume_step) if has_checkpoint(self.run_dir) else 0
        self.started_at = start
        barrier(self.world)  # every rank has read its checkpoint before rank 0 removes any
        if leader:
            self._prepare_run_dir(start)
        deadline = time.perf_counter() + train.max_seconds if train.max_seconds else None
        timing = [time.perf_counter(), start]
        completed = start
        if "tensorboard" in train.log and start < train.steps and leader:
            self.tensorboard = TensorBoardLog(self.run_dir, start, dumps(self.spec))
        metrics_file = (self.run_dir / METRICS_FILE).open("a") if leader else contextlib.nullcontext()
        with self._closing_tensorboard(), metrics_file as metrics, tqdm(
                total=train.steps, initial=start, desc=self.spec.name, disable=not (train.progress and leader),
                dynamic_ncols=True, unit="step") as bar:
            for step in range(start, train.steps):
                completed = step + 1
                final = completed == train.steps or self._out_of_time(deadline)
                logged = completed % train.log_every == 0 or final
                losses, samples, ctx = self._step(step, logged)
                self.health.observe(ctx.diagnostics)
                if logged and leader:
                    self._log(metrics, bar, losses, ctx, completed, timing)
                if (completed % train.sample_every == 0 or final) and leader:
                    self._save_samples(samples, completed)
                if completed % train.checkpoint_every == 0 or final:
                    self._checkpoint(completed)
                if (final or (self.spec.eval.every and completed % self.spec.eval.every == 0)) and leader:
                    self._evaluate(completed, bar)
                bar.update(1)
                if final:
                    break
        return completed

    def _prepare_run_dir(self, start: int) -> None:
        """Rank 0, before the first step: the checkpoints after a resumed one and leftovers of a
        crash removed, the run's files written, the logs cut back to the checkpoint."""
        train = self.spec.train
        if self.resume_step is not None:
            removed = discard_after(self.run_dir, start)
            if removed:
                print(f"resuming from step {start}: removed the later checkpoints of steps "
                      f"{', '.join(map(str, sorted(removed)))}", file=sys.stderr)
        prune(self.run_dir, start, train.keep_checkpoints)  # what a crash while writing or removing left behind
        self._write_static_files()  # after loading: a refused resume leaves the run's files as they were
        self.last_record = _drop_records_after(self.run_dir / METRICS_FILE, start)
        _drop_records_after(self.run_dir / EVAL_LOG, start)

    def _out_of_time(self, deadline: float | None) -> bool:
        """Past ``train.max_seconds`` (on any rank: all ranks stop at the same step)."""
        return deadline is not None and on_any_rank(time.perf_counter() > deadline, self.world.world_size)

    @contextlib.contextmanager
    def _closing_tensorboard(self):
        try:
            yield
        finally:
            if self.tensorboard:
                self.tensorboard.close()
                self.tensorboard = None

    def _step(self, step: int, logged: bool):
        with self._stopping_on_divergence(step + 1):
            return self.program.step(step, diagnostics_wanted=logged)

    def _checkpoint(self, completed: int) -> None:
        with self._stopping_on_divergence(completed):
            save_checkpoint(self.run_dir, self.program, completed, self.spec.train.keep_checkpoints)
        if self.tensorboard:
            self.tensorboard.flush()  # the logs hold at least what the checkpoint holds

    @contextlib.contextmanager
    def _stopping_on_divergence(self, step: int):
        """A DivergenceError stops the run: it writes divergence.json (the error, the last logged
        metrics, the offending tensors' statistics) and says which checkpoint is kept and how to
        roll back to it (docs/reliability.md)."""
        try:
            yield
        except DivergenceError as error:
            kept = latest(self.run_dir) if has_checkpoint(self.run_dir) else None
            record = {"step": step, "error": str(error), "last_metrics": self.last_record, "tensors": error.tensors,
                      "checkpoint_kept": str(kept.path) if kept else None}
            with atomic_path(self.run_dir / DIVERGENCE_FILE) as temporary:
                temporary.write_text(json.dumps(record, indent=2) + "\n")
            rollback = (f"the last good checkpoint (step {kept.step}) is kept in {kept.path}; to roll back, resume "
                        f"it with a lower learning rate: ebmgraph run --resume {self.run_dir} "
                        f"--set optimizers.NAME.lr=VALUE" if kept else "no checkpoint had been written yet")
            raise DivergenceError(f"{error}. The run stopped; {rollback}. Details: "
                                  f"{self.run_dir / DIVERGENCE_FILE}", error.tensors) from None
