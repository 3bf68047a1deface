"""Learning-rate schedules: the ``schedule:`` key of an optimizer, its errors, its values (against
the formulas), one step per training step, exact resume across a warm-up boundary, ``check``."""

import json
import math
import warnings

import attrs
import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.load import load_graph, loads_graph
from ebmgraph.engine.lr_schedules import build_schedule
from ebmgraph.engine.program import Program
from ebmgraph.errors import DataError, GraphError
from ebmgraph.runs.runner import Runner
from ebmgraph.spec.dump import dumps
from ebmgraph.spec.lr_schedule import (
    CosineSchedule,
    ExponentialSchedule,
    StepSchedule,
    WarmupSchedule,
)
from ebmgraph.store.checkpoint import STATE, latest
from ebmgraph.store.run_files import METRICS_FILE
from tests.checkpoint_files import final_state, replace_state

SCHEDULE = "optimizers.energy_optimizer.schedule"
LR = 0.0003  # short_run's energy_optimizer

GRAPH = """name: g
data: {type: digits, batch_size: 16}
models:
  energy: {type: conv_energy, channels: 8}
nodes:
  noise: {type: uniform_noise, like: data}
  negatives: {type: langevin, energy: energy, init: noise, steps: 2, step_size: 1.0, noise: 0.01}
  positive_energy: {type: evaluate_energy, energy: energy, x: data}
  negative_energy: {type: evaluate_energy, energy: energy, x: negatives}
losses:
  cd: {type: contrastive_divergence, positive: positive_energy, negative: negative_energy}
optimizers:
  opt:
    type: adam
    models: [energy]
    losses: [cd]
    lr: 0.001
    schedule:
"""


def _load(schedule_yaml: str):
    """GRAPH with ``schedule_yaml`` (lines indented under ``schedule:``) as file ``g.yaml``."""
    return loads_graph(GRAPH + schedule_yaml, "g.yaml")


def _errors(schedule_yaml: str) -> str:
    with pytest.raises(GraphError) as error:
        _load(schedule_yaml)
    return str(error.value)


# --- parsing ------------------------------------------------------------------------------------------


def test_one_mapping_a_list_and_none():
    assert _load("      {type: warmup, steps: 2000}").optimizers["opt"].schedule == [WarmupSchedule(steps=2000)]
    spec = _load("      - {type: warmup, steps: 10, start_factor: 0.1}\n"
                 "      - {type: step, every: 1000, gamma: 0.99}")
    assert spec.optimizers["opt"].schedule == [WarmupSchedule(10, 0.1), StepSchedule(every=1000, gamma=0.99)]
    assert _load("      null").optimizers["opt"].schedule == []
    assert load_graph("graphs/short_run.yaml").optimizers["energy_optimizer"].schedule == []


@pytest.mark.parametrize("value", ["{type: cosine, steps: 50, min_lr: 1.0e-5}",
                                   "[{type: warmup, steps: 3}, {type: exponential, gamma: 0.9}]"])
def test_round_trip(value):
    spec = load_graph("graphs/short_run.yaml", None, (f"{SCHEDULE}={value}",))
    again = loads_graph(dumps(spec), "dumped.yaml")
    assert again == spec and again.optimizers["energy_optimizer"].schedule


def test_profiles_and_set_replace_or_merge_a_schedule():
    spec = load_graph("graphs/short_run.yaml", None, (f"{SCHEDULE}={{type: step, every: 10, gamma: 0.5}}",
                                                      f"{SCHEDULE}.gamma=0.9"))
    assert spec.optimizers["energy_optimizer"].schedule == [StepSchedule(every=10, gamma=0.9)]
    spec = load_graph("graphs/short_run.yaml", None, (f"{SCHEDULE}={{type: step, every: 10, gamma: 0.5}}",
                                                      f"{SCHEDULE}={{type: warmup, steps: 4}}"))
    assert spec.optimizers["energy_optimizer"].schedule == [WarmupSchedule(steps=4)]


BAD = [
    ("      {type: warmpu, steps: 3}",
     ("g.yaml:19:14: optimizers.opt.schedule.type: unknown schedule type 'warmpu' (did you mean 'warmup'?); "
      "schedule types: 'cosine', 'exponential', 'step', 'warmup'")),
    ("      {type: step, every: 10, gama: 0.5}",
     ("g.yaml:19:31: optimizers.opt.schedule.gama: unknown key 'gama' for schedule type 'step' (did you mean "
      "'gamma'?); expected one of 'every', 'gamma', 'steps', 'type'\n"
      "g.yaml:19:7: optimizers.opt.schedule.gamma: missing required key 'gamma' for schedule type 'step'")),
    ("      {steps: 3}",
     ("g.yaml:19:7: optimizers.opt.schedule: missing required key 'type' (one of the schedule types: 'cosine', "
      "'exponential', 'step', 'warmup')")),
    ("      {type: step, every: often, gamma: 0.5}",
     "g.yaml:19:27: optimizers.opt.schedule.every: expected an integer, found 'often' (a string)"),
    ("      {type: exponential, gamma: 1.5}",
     "g.yaml:19:34: optimizers.opt.schedule.gamma: must be in (0, 1] (the factor of each decay), found 1.5"),
    ("      {type: warmup, steps: 1, start_factor: 0}",
     ("g.yaml:19:29: optimizers.opt.schedule.steps: must be >= 2, found 1\n"
      "g.yaml:19:46: optimizers.opt.schedule.start_factor: must be in (0, 1], found 0.0")),
    ("      - {type: warmup, steps: 3}\n      - {type: cosine, steps: 5, min_lr: 0.01}",
     "g.yaml:20:42: optimizers.opt.schedule[1].min_lr: must be at most the optimizer's lr 0.001, found 0.01"),
    ("      - {type: step, every: 10, gamma: 0.5}\n      - {type: cosine, steps: 5}",
     ("g.yaml:19:9: optimizers.opt.schedule[0]: piece 1 of 2 needs 'steps': how many training steps it lasts "
      "before the next piece starts")),
    ("      {type: step, every: 10, gamma: 0.5, steps: 100}",
     ("g.yaml:19:50: optimizers.opt.schedule.steps: a step decay that is the last piece runs to the end of "
      "training; give 'steps' only to a piece that another piece follows")),
    ("      warmup",
     ("g.yaml:19:7: optimizers.opt.schedule: expected a schedule mapping {type: ...} or a list of them, found "
      "'warmup' (a string)")),
    ("      [warmup]",
     ("g.yaml:19:8: optimizers.opt.schedule[0]: expected a schedule mapping with a 'type' key, found 'warmup' "
      "(a string)")),
]


@pytest.mark.parametrize("schedule_yaml, expected", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_located_errors(schedule_yaml, expected):
    assert _errors(schedule_yaml) == expected


def test_set_errors_name_the_override():
    with pytest.raises(GraphError) as error:
        load_graph("graphs/short_run.yaml", None, (f"{SCHEDULE}={{type: cosine}}",))
    assert str(error.value) == (f"--set {SCHEDULE}={{type: cosine}}: {SCHEDULE}.steps: missing required key "
                                "'steps' for schedule type 'cosine'")


# --- values: torch's schedulers against the formulas -----------------------------------------------------


def _rates(pieces, steps: int, lr: float = 1.0) -> list[float]:
    """The learning rate of training steps 0..steps-1 (the scheduler stepped after each)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = build_schedule(optimizer, pieces)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scheduler warnings (order of step calls, deprecated arguments)
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
    return out


def _cosine(t: int, steps: int, lr: float, low: float) -> float:
    return low + (lr - low) * (1 + math.cos(math.pi * t / steps)) / 2


CASES = {
    "warmup": ([WarmupSchedule(steps=4)], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]),
    "warmup_from": ([WarmupSchedule(steps=3, start_factor=0.1)], [0.1, 0.55, 1.0, 1.0, 1.0]),
    "step": ([StepSchedule(every=3, gamma=0.5)], [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]),
    "exponential": ([ExponentialSchedule(gamma=0.9)], [0.9 ** t for t in range(7)]),
    "cosine": ([CosineSchedule(steps=4, min_lr=0.1)], [_cosine(t, 4, 1.0, 0.1) for t in range(5)] + [0.1, 0.1, 0.1]),
    "warmup_then_step": ([WarmupSchedule(steps=2), StepSchedule(every=2, gamma=0.5)],
                         [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25]),
    "warmup_then_cosine": ([WarmupSchedule(steps=2), CosineSchedule(steps=3)],
                           [0.5, 1.0] + [_cosine(t, 3, 1.0, 0.0) for t in range(4)] + [0.0]),
    "step_then_exponential": ([StepSchedule(every=2, gamma=0.5, steps=4), ExponentialSchedule(gamma=0.8)],
                              [1.0, 1.0, 0.5, 0.5, 1.0, 0.8, 0.64]),
}


@pytest.mark.parametrize("name", CASES)
def test_values_follow_the_formulas(name):
    pieces, expected = CASES[name]
    assert _rates(pieces, len(expected)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_a_repeated_phase_is_one_training_step():
    """Exponential decay per training step: 3 updates of a repeated phase count once; the logged lr
    is the one the step used."""
    spec = load_graph("graphs/short_run.yaml", None, (
        "data.batch_size=16", "models.energy.channels=8", "nodes.negatives.steps=2",
        "schedule.phases=[{optimizers: [energy_optimizer], repeat: 3}]", f"{SCHEDULE}={{type: exponential, gamma: 0.5}}"))
    program = Program(spec)
    assert "    O.step_schedules()  # learning-rate schedules: one step per training step" in program.source.text
    for step in range(3):
        _, _, ctx = program.step(step)
        assert ctx.diagnostics["energy_optimizer/lr"] == pytest.approx(LR * 0.5 ** step, rel=1e-12)
    assert program.updater.optimizers["energy_optimizer"].param_groups[0]["lr"] == pytest.approx(LR / 8, rel=1e-12)


def test_no_schedule_no_step_and_no_lr_record():
    program = Program(load_graph("graphs/short_run.yaml", None, ("data.batch_size=16", "models.energy.channels=8",
                                                                 "nodes.negatives.steps=2")))
    assert "step_schedules" not in program.source.text
    assert "energy_optimizer/lr" not in program.step(0)[2].diagnostics


# --- resume ----------------------------------------------------------------------------------------------


WARMUP = f"{SCHEDULE}={{type: warmup, steps: 3}}"


def _state(run_dir):
    return final_state(run_dir)


def _logged_lr(run_dir) -> list[float]:
    return [json.loads(line)["energy_optimizer/lr"] for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def _same_parameters(a, b) -> bool:
    return all(torch.equal(value, b["models"]["energy"][key]) for key, value in a["models"]["energy"].items())


def test_resume_across_the_warm_up_boundary_is_bit_identical(tmp_path, fast_graph):
    """Warm-up over steps 0-2; a run stopped after step 2 (still warming up) and resumed to 6 ends with
    the parameters, optimizer state and schedule of an uninterrupted 6-step run, bit for bit."""
    spec = fast_graph("short_run", WARMUP, "train.steps=6", "train.checkpoint_every=2")
    whole = tmp_path / "whole"
    Runner(spec, whole).run()
    split = tmp_path / "split"
    Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=2)), split).run()
    assert _state(split)["lr_schedules"]["energy_optimizer"]["state"]["last_epoch"] == 2
    Runner(spec, split).run()

    a, b = _state(whole), _state(split)
    assert a["step"] == b["step"] == 6
    assert _same_parameters(a, b)
    for key, value in a["optimizers"]["energy_optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, b["optimizers"]["energy_optimizer"]["state"][key][name])
    assert a["lr_schedules"] == b["lr_schedules"]
    assert _logged_lr(whole) == _logged_lr(split) == pytest.approx([LR / 3, 2 * LR / 3, LR, LR, LR, LR], rel=1e-12)


def test_resume_with_a_lost_schedule_state_differs(tmp_path, fast_graph):
    """Power check: a resumed run whose schedule starts over (warming up again) ends elsewhere, so
    the test above has teeth."""
    spec = fast_graph("short_run", WARMUP, "train.steps=4", "train.checkpoint_every=2")
    Runner(spec, tmp_path / "whole").run()
    split = tmp_path / "split"
    Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=2)), split).run()
    state = _state(split)
    fresh = Program(spec).updater.schedules_state_dict()
    state["lr_schedules"] = fresh
    replace_state(split, state)
    Runner(spec, split).run()
    assert not _same_parameters(_state(tmp_path / "whole"), _state(split))
    assert _logged_lr(split) != _logged_lr(tmp_path / "whole")


def test_a_schedule_cannot_change_on_resume(tmp_path, fast_graph):
    run = tmp_path / "run"
    Runner(fast_graph("short_run", "train.steps=2"), run).run()  # a checkpoint without schedules
    with pytest.raises(DataError) as error:
        Runner(fast_graph("short_run", WARMUP), run).run()
    assert str(error.value) == (f"checkpoint '{latest(run).file(STATE)}': optimizer 'energy_optimizer': the checkpoint "
                                "was written with learning-rate schedule none, the graph has {type: warmup, steps: "
                                "3}; a schedule cannot change when a run resumes (start a new run instead)")
    scheduled = tmp_path / "scheduled"
    Runner(fast_graph("short_run", WARMUP, "train.steps=2"), scheduled).run()
    with pytest.raises(DataError, match="learning-rate schedule {type: warmup, steps: 3}, the graph has none"):
        Runner(fast_graph("short_run"), scheduled).run()


def test_a_checkpoint_from_before_schedules_resumes(tmp_path, fast_graph):
    run = tmp_path / "run"
    Runner(fast_graph("short_run", "train.steps=2"), run).run()
    state = _state(run)
    del state["lr_schedules"]
    replace_state(run, state)
    assert Runner(fast_graph("short_run"), run).run() == 4


# --- ebmgraph check ----------------------------------------------------------------------------------------


def test_check_prints_each_schedule(capsys):
    assert main(["check", "graphs/short_run.yaml", "--set", "models.energy.channels=8",
                 "--set", f"{SCHEDULE}=[{{type: warmup, steps: 2000}}, {{type: cosine, steps: 8000, min_lr: 1e-5}}]"]) == 0
    out = capsys.readouterr().out
    assert ("  energy_optimizer (adam): models [energy] <- losses [cd]\n"
            "    schedule: lr 0.0003: linear warm-up over 2000 steps, then cosine annealing to 1e-05 over 8000 steps, "
            "then constant at 1e-05\n") in out


@pytest.mark.parametrize("value, shown", [
    ("{type: warmup, steps: 2000}", "lr 0.0003: linear warm-up over 2000 steps, then constant"),
    ("{type: step, every: 1000, gamma: 0.99}", "lr 0.0003: x0.99 every 1000 steps to the end"),
    ("[{type: warmup, steps: 10, start_factor: 0.1}, {type: exponential, gamma: 0.999}]",
     "lr 0.0003: linear warm-up from 0.1 x lr over 10 steps, then x0.999 every step to the end"),
    ("[{type: step, every: 5, gamma: 0.5, steps: 20}, {type: cosine, steps: 30}]",
     ("lr 0.0003: x0.5 every 5 steps for 20 steps, then from lr again, cosine annealing to 0 over 30 steps, "
      "then constant at 0")),
])
def test_check_descriptions(value, shown, capsys):
    assert main(["check", "graphs/short_run.yaml", "--set", "models.energy.channels=8", "--set", f"{SCHEDULE}={value}"]) == 0
    assert f"    schedule: {shown}\n" in capsys.readouterr().out
