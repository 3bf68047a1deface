"""Checkpoint history: rotation keeps the newest ``train.keep_checkpoints``, ``train.keep_best``
keeps the best evaluation's checkpoint beside them, and a run resumed from a kept checkpoint
(``--resume RUN_DIR@STEP``) ends bit-identical to an uninterrupted run."""

import json

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.load import load_graph
from ebmgraph.errors import DataError, GraphError
from ebmgraph.runs import runner as runner_module
from ebmgraph.runs.runner import Runner
from ebmgraph.store.checkpoint import read_state
from ebmgraph.store.checkpoint_dir import CHECKPOINTS, checkpoint_of_step, read_best
from ebmgraph.store.run_files import EVAL_LOG
from tests.checkpoint_files import final_state
from tests.conftest import FAST

TOY = ("train.progress=false", "nodes.negatives.steps=2", "eval.n=64", "eval.steps=5", "eval.grid=40",
       "eval.source=chains", "eval.metrics=[density]")


def _steps(run_dir) -> list[int]:
    return sorted(int(path.name.removeprefix("step_")) for path in (run_dir / CHECKPOINTS).glob("step_*"))


def test_rotation_keeps_exactly_k_checkpoints(tmp_path, fast_graph, monkeypatch):
    counts, save = [], runner_module.save_checkpoint

    def counting(run_dir, *args):
        stored = save(run_dir, *args)
        counts.append(len(_steps(run_dir)))
        return stored

    monkeypatch.setattr(runner_module, "save_checkpoint", counting)
    Runner(fast_graph("igebm", "train.steps=20", "train.checkpoint_every=2", "train.keep_checkpoints=3"),
           tmp_path / "run").run()
    assert counts == [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]  # ten checkpoints, never more than three kept
    assert _steps(tmp_path / "run") == [16, 18, 20]


def test_keep_best_holds_the_best_evaluation(tmp_path):
    """The largest KL is "best" here (mode max), so that the best is an early step, not the newest."""
    settings = (*TOY, "train.steps=12", "train.checkpoint_every=5", "train.keep_checkpoints=1", "eval.every=3",
                "train.keep_best=kl_data_model", "train.keep_best_mode=max")
    run_dir = tmp_path / "run"
    Runner(load_graph("graphs/igebm.yaml", "toy2d", settings), run_dir).run()
    evaluations = [json.loads(line) for line in (run_dir / EVAL_LOG).read_text().splitlines()]
    assert [record["step"] for record in evaluations] == [3, 6, 9, 12]
    values = {record["step"]: record["metrics"]["kl_data_model"] for record in evaluations}
    best_step = max(values, key=values.get)
    assert best_step != 12
    best = read_best(run_dir)
    assert best == {"metric": "kl_data_model", "mode": "max", "value": values[best_step], "step": best_step}
    assert _steps(run_dir) == sorted({best_step, 12})  # the newest one, and the best beside it
    assert read_state(checkpoint_of_step(run_dir, best_step))["step"] == best_step


def test_keep_best_mode_follows_the_metric():
    def mode(metric):
        return load_graph("graphs/igebm.yaml", None, (f"train.keep_best={metric}",)).train.best_mode()

    assert [mode(m) for m in ("kl_data_model", "fid", "accuracy", "auroc_uniform_box", "inception_score_std")] == \
        ["min", "min", "max", "max", "min"]


def test_keep_best_needs_a_periodic_evaluation(tmp_path):
    with pytest.raises(GraphError, match="train.keep_best.*set eval.every"):
        Runner(load_graph("graphs/igebm.yaml", "toy2d", (*TOY, "train.keep_best=tv")), tmp_path / "run")


def test_keep_best_names_an_unknown_metric(tmp_path):
    settings = (*TOY, "train.steps=2", "eval.every=2", "train.keep_best=kl_data_modle")
    with pytest.raises(DataError, match="no metric 'kl_data_modle'.*kl_data_model"):
        Runner(load_graph("graphs/igebm.yaml", "toy2d", settings), tmp_path / "run").run()


def test_resume_from_a_kept_checkpoint_is_bit_identical(tmp_path, fast_graph):
    overrides = ("train.steps=10", "train.checkpoint_every=2", "train.keep_checkpoints=4",
                 "nodes.bank.write=back", "nodes.bank.capacity=40")
    Runner(fast_graph("igebm", *overrides), tmp_path / "whole").run()
    Runner(fast_graph("igebm", *overrides), tmp_path / "again").run()
    assert _steps(tmp_path / "again") == [4, 6, 8, 10]
    assert main(["run", "--resume", f"{tmp_path / 'again'}@6", "--set", "train.progress=false"]) == 0
    assert _steps(tmp_path / "again") == [4, 6, 8, 10]  # 8 and 10 written again by the resumed run
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "again")
    assert a["step"] == b["step"] == 10
    for key, value in a["models"]["energy"].items():
        assert torch.equal(value, b["models"]["energy"][key]), f"energy.{key} differs after resume"
    logged = [json.loads(line)["step"] for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and logged[-1] == 10  # no step logged twice


def test_resume_from_a_step_not_kept_names_the_kept_ones(tmp_path, fast_graph, capsys):
    Runner(fast_graph("igebm", "train.steps=4", "train.checkpoint_every=2"), tmp_path / "run").run()
    assert main(["run", "--resume", f"{tmp_path / 'run'}@3"]) == 2
    assert "no checkpoint of step 3 (steps kept: 2, 4)" in capsys.readouterr().err


def test_rerun_into_a_finished_run_says_nothing_was_trained(tmp_path, capsys):
    command = ["run", "graphs/igebm.yaml", "--out", str(tmp_path / "run")]
    for setting in FAST:
        command += ["--set", setting]
    assert main(command) == 0
    assert "finished 4 steps (4 trained now)" in capsys.readouterr().err
    assert main(command) == 0
    assert "nothing trained: " in capsys.readouterr().err and _steps(tmp_path / "run") == [2, 4]
