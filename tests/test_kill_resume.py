"""SIGKILL at many points of a run (while a checkpoint file is half written, before and after the
checkpoint directory's rename, while old checkpoints are removed, while a picture is renamed into
place, while a metrics line is half written, between steps), twice in a row at the same point:
every resume continues from the last complete checkpoint and ends bit-identical to an
uninterrupted run, with each step logged once.

A point is (what, step, index): the index-th call of ``what`` during training step ``step``; the
resumed run repeats that step, so it dies at the same point again. The children are forked from
the test process (one thread, as the reference run), so they compute the same bits."""

import json
import multiprocessing
import os
import random
import signal

import pytest
import torch

from ebmgraph.runs.runner import Runner
from ebmgraph.store.checkpoint import latest
from ebmgraph.store.checkpoint_dir import has_checkpoint
from tests.checkpoint_files import final_state

STEPS = ("train.steps=8", "train.checkpoint_every=2", "train.sample_every=3", "train.log_every=1", "eval.n=8")
KINDS = ("write_file", "rename", "renamed", "rmtree", "replace", "metrics_line", "step")
SLOW_POINTS, FAST_POINTS = 24, 4


def _child(spec, run_dir, target, trace):
    """Train in ``run_dir``; die by SIGKILL at ``target`` (a (what, step, index) triple), or, with
    ``trace``, record every point reached in that file."""
    import ebmgraph.runs.runner as runner_module
    import ebmgraph.store.checkpoint_dir as checkpoint_dir

    step, counts, seen = [0], {}, []

    def reached(what, before_dying=lambda: None):
        key = (what, step[0])
        counts[key] = counts.get(key, 0) + 1
        point = [what, step[0], counts[key]]
        seen.append(point)
        if point == target:
            before_dying()
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(what, real, half_write=None):
        def wrapper(*args, **kwargs):
            reached(what, (lambda: half_write(*args)) if half_write else lambda: None)
            result = real(*args, **kwargs)
            if what == "rename":
                reached("renamed")
            return result
        return wrapper

    def half_file(path, data):
        path.write_bytes(data[: len(data) // 2])

    def half_line(metrics, *_):
        metrics.write('{"step": 99, "loss/cd": 0.')
        metrics.flush()

    real_step, real_log = runner_module.Program.step, runner_module.Runner._log

    def counted_step(self, index, *args, **kwargs):
        step[0] = index + 1
        reached("step")
        return real_step(self, index, *args, **kwargs)

    checkpoint_dir.write_file = wrap("write_file", checkpoint_dir.write_file, half_file)
    checkpoint_dir.os.rename = wrap("rename", os.rename)
    checkpoint_dir.shutil.rmtree = wrap("rmtree", checkpoint_dir.shutil.rmtree)
    runner_module.Program.step = counted_step
    runner_module.Runner._log = lambda self, metrics, *args: (reached("metrics_line", lambda: half_line(metrics)),
                                                             real_log(self, metrics, *args))
    import ebmgraph.store.atomic as atomic

    atomic.os.replace = wrap("replace", os.replace)
    Runner(spec, run_dir).run()
    if trace:
        trace.write_text(json.dumps(seen))


def _fork(spec, run_dir, target=None, trace=None) -> int:
    process = multiprocessing.get_context("fork").Process(target=_child, args=(spec, run_dir, target, trace))
    process.start()
    process.join(120)
    return process.exitcode


def _points(events: list, count: int) -> list:
    """``count`` points drawn with a fixed seed from those a run reaches, every kind at least once."""
    rng = random.Random(0)
    chosen = [rng.choice([e for e in events if e[0] == kind]) for kind in KINDS]
    rest = [e for e in events if e not in chosen]
    return chosen + rng.sample(rest, count - len(chosen))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final state and the points it passes."""
    from tests.conftest import FAST
    from ebmgraph.engine.load import load_graph

    spec = load_graph("graphs/igebm.yaml", None, FAST + STEPS)
    root = tmp_path_factory.mktemp("reference")
    trace = root / "trace.json"
    assert _fork(spec, root / "traced", trace=trace) == 0
    Runner(spec, root / "whole").run()
    return spec, final_state(root / "whole"), json.loads(trace.read_text())


def _all_points(request):
    return SLOW_POINTS if request.config.getoption("--runslow") else FAST_POINTS


@pytest.mark.parametrize("index", range(SLOW_POINTS))
def test_sigkill_twice_at_a_point_then_resume_is_bit_identical(tmp_path, reference, request, index):
    if index >= _all_points(request):
        pytest.skip(f"points beyond the first {FAST_POINTS}: run with --runslow")
    spec, whole, events = reference
    target = _points(events, SLOW_POINTS)[index]
    run_dir = tmp_path / "run"
    assert _fork(spec, run_dir, target) == -signal.SIGKILL, f"the first run did not die at {target}"
    complete = latest(run_dir).step if has_checkpoint(run_dir) else 0
    repeated = target[1] > complete  # the resumed run repeats the point's step, so it dies there again
    assert _fork(spec, run_dir, target) == (-signal.SIGKILL if repeated else 0), f"resumed run, point {target}"
    Runner(spec, run_dir).run()

    resumed = final_state(run_dir)
    assert resumed["step"] == whole["step"] == 8
    for part in ("models", "optimizers"):
        assert _flat(resumed[part]) == _flat(whole[part]), f"{part} differ after SIGKILL at {target}"
    logged = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 9)), f"metrics after SIGKILL at {target}"
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["step_00000006", "step_00000008"], f"checkpoint directories after SIGKILL at {target}: {kept}"


def test_the_points_cover_every_kind_and_the_power_check_fails_a_lost_step(reference, tmp_path):
    """Every kind of point is reached by a run, and the comparison has teeth: a run resumed with
    one step fewer (its checkpoint of step 8 rewritten by a run of 7 steps) differs."""
    spec, whole, events = reference
    assert {e[0] for e in events} == set(KINDS)
    import attrs

    short = attrs.evolve(spec, train=attrs.evolve(spec.train, steps=7))
    Runner(short, tmp_path / "short").run()
    assert _flat(final_state(tmp_path / "short")["models"]) != _flat(whole["models"])


def _flat(tree) -> list:
    if isinstance(tree, torch.Tensor):
        return [tree.tolist()]
    if isinstance(tree, dict):
        return [(key, _flat(value)) for key, value in sorted(tree.items(), key=lambda item: str(item[0]))]
    if isinstance(tree, (list, tuple)):
        return [_flat(value) for value in tree]
    return [tree]
