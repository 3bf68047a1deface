"""``train.log: [jsonl, tensorboard]``: TensorBoard's own event reader loads the same scalars as
metrics.jsonl, each step once, through a resume and a resume from an earlier kept checkpoint."""

import json
import math

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from ebmgraph.cli import main  # noqa: E402
from tests.conftest import FAST  # noqa: E402


def _settings(*extra):
    out = []
    for setting in (*FAST, "train.log=[jsonl,tensorboard]", "train.keep_checkpoints=4", "eval.every=4", *extra):
        out += ["--set", setting]
    return out


def test_tensorboard_holds_the_metrics_once_per_step_through_resumes(tmp_path):
    run = tmp_path / "run"
    assert main(["run", "graphs/igebm.yaml", "--out", str(run), *_settings("train.steps=3")]) == 0
    assert main(["run", "--resume", str(run), "--steps", "8", *_settings()]) == 0
    assert main(["run", "--resume", f"{run}@6", "--steps", "8", *_settings()]) == 0  # steps 7 and 8 again
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(1, 9))

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    expected = {key for record in records for key, value in record.items()
                if key != "step" and isinstance(value, float) and math.isfinite(value)}
    assert expected <= set(tags["scalars"])
    for key in expected:
        logged = [(event.step, event.value) for event in events.Scalars(key)]
        assert [step for step, _ in logged] == [record["step"] for record in records if key in record], key
        for (_, value), record in zip(logged, (r for r in records if key in r)):
            assert value == pytest.approx(record[key], rel=1e-6, abs=1e-30), key
    evaluations = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [event.step for event in events.Scalars("eval/fd")] == [record["step"] for record in evaluations] == [3, 4, 8]
    assert {"cd/E+", "cd/E-"} <= set(tags["histograms"])
    assert [event.step for event in events.Histograms("cd/E-")] == list(range(1, 9))
    assert [event.step for event in events.Images("samples")] == [2, 3, 4, 6, 8]  # 3: the first run's last
    assert "graph/text_summary" in tags["tensors"]
