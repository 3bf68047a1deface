"""docs/tutorial.md runs as written (on tiny settings): its files are written, its commands
executed, its Python run, and the files it promises exist."""

import json
import re
import shlex
from pathlib import Path

import pytest

from ebmgraph.cli import main

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
TINY = ("train.steps=20", "train.log_every=5", "train.sample_every=10", "train.checkpoint_every=10",
        "train.progress=false", "eval.n=200", "eval.steps=20")


def blocks(text: str) -> list[tuple[str, str | None, str]]:
    """(language, file name from a preceding `<!-- file: NAME -->`, body) of every fenced block."""
    pattern = re.compile(r"(?:<!-- file: (\S+) -->\n)?```(\w+)\n(.*?)```", re.S)
    return [(language, name, body) for name, language, body in pattern.findall(text)]


def test_the_tutorial_keeps_its_promise_of_under_60_lines():
    files = [body for _, name, body in blocks(TUTORIAL.read_text()) if name]
    assert len(files) == 2 and sum(len(body.splitlines()) for body in files) < 60


def test_the_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    import ebmgraph.api

    monkeypatch.chdir(tmp_path)
    commands, python = [], []
    for language, name, body in blocks(TUTORIAL.read_text()):
        if name:
            (tmp_path / name).write_text(body)
        elif language == "bash":
            commands += [shlex.split(line) for line in body.splitlines() if line.startswith("ebmgraph ")]
        elif language == "python":
            python.append(body)
    assert [c[1] for c in commands] == ["check", "draw", "run", "eval", "sample", "report"]
    for command in commands:
        extra = [a for o in TINY for a in ("--set", o)] if command[1] == "run" else []
        extra += ["--n", "200"] if command[1] == "eval" else []
        assert main(command[1:] + extra) == 0, command
    assert "chains (langevin): 20 steps, a=0.005, b=0.1, T=1, effective T=1" in capsys.readouterr().out
    assert (tmp_path / "dsm.png").stat().st_size > 0
    run = tmp_path / "runs" / "dsm"
    assert {"kl_data_model", "kl_model_data", "tv"} <= set(json.loads((run / "eval.json").read_text())["metrics"])
    assert list((run / "samples").glob("fresh_*_trajectory.png")) and (run / "report.html").exists()

    load = ebmgraph.api.load
    monkeypatch.setattr(ebmgraph.api, "load", lambda path, profile=None, overrides=(), plugins=():
                        load(path, profile, tuple(overrides) + TINY, plugins))
    (code,) = python
    exec(compile(code, str(TUTORIAL), "exec"), {})
    assert "sigma: 0.2" in (tmp_path / "runs" / "dsm_sigma02" / "graph.yaml").read_text()


@pytest.mark.parametrize("language", ["python", "yaml"])
def test_the_tutorial_files_are_the_ones_it_describes(language):
    names = [name for lang, name, _ in blocks(TUTORIAL.read_text()) if lang == language and name]
    assert names == {"python": ["dsm_nodes.py"], "yaml": ["dsm.yaml"]}[language]
