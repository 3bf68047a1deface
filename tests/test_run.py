"""End to end: the CLI trains, writes its run directory, samples, and stops cleanly on failures."""

import json

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.program import Program
from ebmgraph.runs.runner import Runner
from ebmgraph.errors import DivergenceError, NodeError
from ebmgraph.nodes.kernels import Langevin
from tests.checkpoint_files import final_state
from tests.conftest import FAST


def _set_args(*overrides):
    return [arg for override in FAST + overrides for arg in ("--set", override)]


def test_run_writes_the_run_directory_and_sample_draws_fresh_chains(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "graphs/igebm.yaml", "--out", str(out), *_set_args()]) == 0
    for name in ("graph.yaml", "step.py", "metrics.jsonl", "checkpoints/step_00000004/state.pt",
                 "checkpoints/step_00000004/banks.h5", "samples/step_000004.png"):
        assert (out / name).exists(), name
    origin = json.loads((out / "origin.json").read_text())
    assert (origin["graph_file"], origin["profile"]) == ("graphs/igebm.yaml", "default")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss/cd", "loss/regularizer", "cd/E+", "cd/E-", "cd/gap", "negatives/grad_norm",
            "bank/reinit_fraction", "steps_per_second"} <= set(records[-1])

    assert main(["sample", str(out), "--n", "8", "--steps", "5"]) == 0
    png = capsys.readouterr().out.strip()  # one path per line
    assert png.endswith("fresh_5steps.png") and (out / "samples" / "fresh_5steps.png").stat().st_size > 0


def test_toy_profile_runs(tmp_path):
    out = tmp_path / "toy"
    assert main(["run", "graphs/short_run.yaml", "--profile", "toy2d", "--out", str(out),
                 "--set", "train.steps=2", "--set", "train.progress=false", "--set", "nodes.negatives.steps=2"]) == 0
    assert (out / "samples" / "step_000002.png").exists()


def test_exception_inside_a_node_names_the_node_and_line(monkeypatch, fast_graph):
    program = Program(fast_graph("short_run"))

    def broken(self, ctx, init):
        raise RuntimeError("boom")

    monkeypatch.setattr(Langevin, "__call__", broken)
    with pytest.raises(NodeError) as error:
        program.step(0)
    assert str(error.value) == ("graphs/short_run.yaml:25: node 'negatives' (langevin) failed at step 1: "
                                "RuntimeError: boom")


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, fast_graph):
    run_dir = tmp_path / "run"
    Runner(fast_graph("short_run", "train.steps=2"), run_dir).run()
    good = final_state(run_dir)

    diverging = fast_graph("short_run", "train.max_abs_energy=1e-12")
    with pytest.raises(DivergenceError) as error:
        Runner(diverging, run_dir).run()
    assert "step 3: diverged at node 'positive_energy'" in str(error.value)
    assert "last good checkpoint" in str(error.value)
    kept = final_state(run_dir)
    assert kept["step"] == 2
    for key, value in good["models"]["energy"].items():
        assert torch.equal(value, kept["models"]["energy"][key])
    record = json.loads((run_dir / "divergence.json").read_text())
    assert record["step"] == 3 and record["checkpoint_kept"].endswith("checkpoints/step_00000002")
    assert record["last_metrics"]["step"] == 2 and "loss/cd" in record["last_metrics"]
    statistics = record["tensors"]["positive_energy"]
    assert statistics["shape"] == [16] and statistics["nan"] == statistics["inf"] == 0
    assert 1e-12 < max(abs(statistics["min"]), abs(statistics["max"]))
    assert f"ebmgraph run --resume {run_dir} --set optimizers.NAME.lr=VALUE" in str(error.value)


def test_a_learning_rate_set_on_resume_takes_effect(tmp_path, fast_graph):
    """The rollback policy: resuming with a lower learning rate uses it (the optimizer's moments
    are restored, its hyper-parameters are the graph's); a resume without --set keeps the old one."""
    run_dir = tmp_path / "run"
    Runner(fast_graph("short_run", "train.steps=2"), run_dir).run()
    lowered = Runner(fast_graph("short_run", "optimizers.energy_optimizer.lr=1e-7"), run_dir)
    lowered.run()
    optimizer = lowered.program.updater.optimizers["energy_optimizer"]
    assert optimizer.param_groups[0]["lr"] == 1e-7 and optimizer.state  # moments restored, not reset
    again = Runner(fast_graph("short_run", "train.steps=6"), run_dir)
    again.run()
    assert again.program.updater.optimizers["energy_optimizer"].param_groups[0]["lr"] == \
        fast_graph("short_run").optimizers["energy_optimizer"].config.lr


def test_cli_reports_divergence_with_exit_code(tmp_path, capsys):
    code = main(["run", "graphs/short_run.yaml", "--out", str(tmp_path / "r"),
                 *_set_args("train.max_abs_energy=1e-12")])
    assert code == 3
    assert "diverged at node 'positive_energy'" in capsys.readouterr().err


def test_check_and_compile_print_what_they_promise(capsys):
    assert main(["check", "graphs/igebm.yaml"]) == 0
    out = capsys.readouterr().out
    assert "negatives (langevin): 30 steps, a=10, b=0.01, T=1, effective T=5e-06" in out
    assert "energy (conv_energy):" in out and "parameters" in out
    assert main(["compile", "graphs/igebm.yaml"]) == 0
    source = capsys.readouterr().out
    assert 'negatives = N.negatives(ctx, init=bank["x"])' in source
    assert 'N.bank.write(ctx, store=negatives["x"])' in source
    compile(source, "step.py", "exec")


def test_cli_resume_continues_to_the_new_total(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "graphs/short_run.yaml", "--out", str(out), *_set_args("train.steps=2")]) == 0
    assert main(["run", "--resume", str(out), "--steps", "4"]) == 0
    assert final_state(out)["step"] == 4
    assert json.loads((out / "origin.json").read_text())["graph_file"] == "graphs/short_run.yaml"
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    with pytest.raises(SystemExit, match="give no FILE or --profile"):
        main(["run", "graphs/short_run.yaml", "--resume", str(out)])


def test_sample_draws_64_chains_unless_told():
    from ebmgraph.cli import parser

    assert parser().parse_args(["sample", "RUN"]).n == 64
    assert parser().parse_args(["sample", "RUN", "--n", "9"]).n == 9
