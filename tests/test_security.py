"""No file runs code: a graph name, a graph-file path, a checkpoint and a CIFAR-10 batch crafted
to run code only fail cleanly (the marker file they try to write never appears), and a graph name
cannot lead a run directory outside its root."""

import os
import pickle
import shutil

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.load import loads_graph
from ebmgraph.errors import GraphError
from tests.checkpoint_files import replace_state
from tests.conftest import FAST

SET = [arg for override in FAST for arg in ("--set", override)]


class _Payload:
    """Unpickling this writes the marker file: what a crafted file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _short_run_named(name: str) -> str:
    return open("graphs/short_run.yaml").read().replace("name: short_run", f"name: {name}", 1)


@pytest.mark.parametrize("name", ['"short_run\\nimport os; os.system(\'touch MARKER\')"', "../../escaped", "/tmp/abs",
                                  '"with space"', "1starts_with_digit"])
def test_a_graph_name_can_neither_run_code_nor_escape(tmp_path, name, capsys):
    marker = tmp_path / "marker"
    graph = tmp_path / "graph.yaml"
    graph.write_text(_short_run_named(name.replace("MARKER", str(marker))))
    assert main(["run", str(graph), "--set", f"train.out={tmp_path / 'runs'}", *SET]) == 2
    assert "invalid graph name" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "runs").exists() and not (tmp_path.parent / "escaped").exists()


def test_a_graph_file_path_cannot_break_out_of_a_generated_comment(tmp_path, monkeypatch):
    text = open("graphs/short_run.yaml").read()
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    evil = tmp_path / "x\nopen('marker', 'w')\n#.yaml"
    evil.write_text(text)
    from ebmgraph.engine.load import load_graph
    from ebmgraph.engine.program import Program

    program = Program(load_graph(evil, None, FAST))
    program.step(0)
    assert not marker.exists()
    assert all(line.lstrip().startswith(("#", "def", "data", "noise", "negatives", "positive", "negative", "cd", "ctx",
                                         "O.", "return")) for line in program.source.text.splitlines())


def test_a_crafted_checkpoint_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "graphs/short_run.yaml", "--out", str(run), *SET]) == 0
    marker = tmp_path / "marker"
    replace_state(run, {"step": 4, "models": _Payload(marker)})
    for command in (["eval", str(run)], ["sample", str(run), "--n", "4"], ["run", "--resume", str(run), "--steps", "6"]):
        assert main(command) == 2, command
        assert "holds more than tensors and plain data, and is refused" in capsys.readouterr().err
    assert not marker.exists()


def test_a_crafted_cifar_batch_is_refused(tmp_path, write_cifar, capsys):
    root = tmp_path / "cifar"
    write_cifar(root)
    marker = tmp_path / "marker"
    with open(root / "data_batch_2", "wb") as file:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, file)
    assert main(["check", "graphs/improved_cd.yaml", "--profile", "paper", "--set", f"data.root={root}"]) == 2
    err = capsys.readouterr().err
    assert "data_batch_2' cannot be read (UnpicklingError: refused global 'posix.system'" in err
    assert not marker.exists()


def test_a_well_formed_name_is_accepted():
    assert loads_graph(_short_run_named("my-run_2"), "ok.yaml").name == "my-run_2"
    with pytest.raises(GraphError, match="ok.yaml:4:7: name: invalid graph name ''"):
        loads_graph(_short_run_named('""'), "ok.yaml")


def test_resume_refuses_a_run_without_its_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "graphs/short_run.yaml", "--out", str(run), *SET]) == 0
    metrics = (run / "metrics.jsonl").read_text()
    shutil.rmtree(run / "checkpoints")
    assert main(["run", "--resume", str(run), "--steps", "6"]) == 2
    assert "has no checkpoint in checkpoints/: nothing to resume from; refusing to start it over" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == metrics


def test_a_new_run_never_overwrites_a_run_of_another_graph(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "graphs/short_run.yaml", "--out", str(run), *SET]) == 0
    kept = {name: (run / name).read_bytes() for name in ("graph.yaml", "step.py", "checkpoints/step_00000004/state.pt",
                                                         "metrics.jsonl")}
    assert main(["run", "graphs/igebm.yaml", "--out", str(run), *SET]) == 2
    assert "holds a run of another graph ('short_run'); it is left untouched" in capsys.readouterr().err
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert main(["run", "graphs/short_run.yaml", "--out", str(run), *SET, "--steps", "6"]) == 0  # the same graph continues


@pytest.mark.parametrize("override, message", [
    ("train.log_every=0", "train.log_every: must be >= 1, found 0"),
    ("train.steps=-1", "train.steps: must be >= 1, found -1"),
    ("train.max_abs_energy=.nan", "train.max_abs_energy: must be a finite number > 0, found nan"),
    ("eval.n=0", "eval.n: must be >= 1, found 0"),
    ("eval.low=2.0", "eval.high: expected low < high, found low=2.0, high=1.0"),
    ("eval.grid=0", "eval.grid: must be >= 2, found 0"),
    ("optimizers.energy_optimizer.lr=-0.1", "optimizers.energy_optimizer.lr: must be a finite number >= 0, found -0.1"),
    ("optimizers.energy_optimizer.betas=[0.9, 1.0]", "optimizers.energy_optimizer.betas: each must be in [0, 1)"),
    ("seed=-1", "seed: must be in [0, 2**63), found -1"),
    ("seed=9223372036854775808", "seed: must be in [0, 2**63), found 9223372036854775808"),
    ("models.energy.channels=0", "models.energy.channels: must be >= 1, found 0"),
    ("models.energy.stages=0", "models.energy.stages: must be >= 1, found 0"),
    ("models.energy={type: mlp_energy, layers: 0}", "models.energy.layers: must be >= 1, found 0"),
    ("models.energy={type: mlp_energy, hidden: 0}", "models.energy.hidden: must be >= 1, found 0"),
])
def test_absurd_values_are_located_errors(override, message):
    with pytest.raises(GraphError) as error:
        loads_graph(open("graphs/short_run.yaml").read(), "short_run.yaml", None, (override,))
    assert message in str(error.value)


def test_a_node_and_a_loss_cannot_share_a_name():
    text = open("graphs/short_run.yaml").read().replace("\n  cd:", "\n  noise:", 1)
    with pytest.raises(GraphError, match="losses.noise: 'noise' names both a node and a loss"):
        loads_graph(text.replace("losses: [cd]", "losses: [noise]"), "clash.yaml")


def _alias_bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nname: bomb\n"


@pytest.mark.parametrize("content, message", [
    (b"name: x\xff\n", "bad.yaml:1:1: not UTF-8 text: byte 0xff at offset 7"),
    (b"? [a, b]\n: 1\nname: x\n", "bad.yaml:1:3: keys must be scalars"),
    (b"a: &a [*a]\nname: x\n", "bad.yaml:1:4: a[0]: recursive alias: this value contains itself"),
    (b"name: !!python/object/apply:os.system [touch MARKER]\n", "bad.yaml:1:7: name: cannot read this value: "
                                                             "the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    (b"name: !!python/name:os.system x\n", "bad.yaml:1:7: name: cannot read this value: could not determine"),
    (b"name: !weird x\n", "bad.yaml:1:7: name: cannot read this value: could not determine a constructor for the tag"),
    (b"name: x\nseed: !!float abc\n", "bad.yaml:2:7: seed: cannot read this value: could not convert string"),
    (b"name: x\nseed: " + b"9" * 5000 + b"\n", "bad.yaml:2:7: seed: cannot read this value: Exceeds the limit"),
    (b"name: x\nmodels: " + b"[" * 5000 + b"]" * 5000 + b"\n", "bad.yaml: invalid YAML: nested more than 64 levels"),
    (b"name: x\nmodels: " + b"[" * 100 + b"]" * 100 + b"\n", "nested more than 64 levels deep"),
    (_alias_bomb().encode(), "the document holds more than 100000 values (aliases expanded)"),
    (b"name: x\n" + b"#" * (1 << 20) + b"\n", "more than 1048576: refused"),
])
def test_malformed_graph_files_are_located_errors_in_bounded_time(tmp_path, content, message, capsys):
    import time

    graph = tmp_path / "bad.yaml"
    graph.write_bytes(content.replace(b"MARKER", str(tmp_path / "marker").encode()))
    start = time.perf_counter()
    assert main(["check", str(graph)]) == 2
    assert time.perf_counter() - start < 5
    assert message in capsys.readouterr().err.replace(str(tmp_path) + "/", "")
    assert not (tmp_path / "marker").exists()


def test_non_finite_state_is_never_checkpointed(tmp_path, fast_graph):
    from ebmgraph.errors import DivergenceError
    from ebmgraph.runs.runner import Runner
    from ebmgraph.store.checkpoint import save_checkpoint

    run = tmp_path / "run"
    runner = Runner(fast_graph("igebm", "train.steps=2"), run)
    runner.run()
    kept = sorted((path, path.read_bytes()) for path in run.rglob("*") if path.is_file())
    program = runner.program
    with torch.no_grad():
        next(program.models["energy"].parameters())[0] = float("inf")
    with pytest.raises(DivergenceError, match=r"step 3: not checkpointed: 'models.energy.[a-z0-9_.]+' holds non-finite"):
        save_checkpoint(run, program, 3)
    with torch.no_grad():
        next(program.models["energy"].parameters())[0] = 0.0
    program.nodes["bank"].storage[0] = float("nan")
    with pytest.raises(DivergenceError, match="'banks.bank.storage' holds non-finite values"):
        save_checkpoint(run, program, 3)
    assert sorted((path, path.read_bytes()) for path in run.rglob("*") if path.is_file()) == kept


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, fast_graph, monkeypatch, capsys):
    import errno

    import ebmgraph.store.checkpoint_dir as checkpoint_dir

    run = tmp_path / "run"
    assert main(["run", "graphs/igebm.yaml", "--out", str(run), *SET, "--steps", "2"]) == 0
    kept = sorted((path, path.read_bytes()) for path in (run / "checkpoints").rglob("*") if path.is_file())
    real_write = checkpoint_dir.write_file

    def full(path, data):
        if path.name == "banks.h5":
            path.write_bytes(data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_dir, "write_file", full)
    assert main(["run", "--resume", str(run), "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "cannot write checkpoint file" in err and "banks.h5' (the disk is full): the checkpoint of step 4 was " \
        "not written; the previous checkpoint is kept" in err
    assert sorted((path, path.read_bytes()) for path in (run / "checkpoints").rglob("*") if path.is_file()) == kept
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002"]  # no temporary directory left


@pytest.mark.parametrize("device, message", [("bogus", "unknown device 'bogus'"),
                                             ("cuda:7", "this machine has")])
def test_a_device_this_machine_lacks_is_a_clear_error(tmp_path, device, message, capsys):
    assert main(["run", "graphs/short_run.yaml", "--device", device, "--out", str(tmp_path / "run"), *SET]) == 2
    assert message in capsys.readouterr().err
