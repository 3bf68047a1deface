"""The examples run end to end on a tiny trained run."""

import importlib.util
import math
from pathlib import Path

import ebmgraph
from ebmgraph.runs.runner import Runner
from ebmgraph.engine.load import load_graph

TINY_DUAL_MCMC = ("train.steps=2", "train.progress=false", "data.batch_size=16", "models.energy.channels=4",
                  "models.generator.channels=8", "models.encoder.channels=8", "nodes.revised_x.steps=2",
                  "nodes.revised_z.steps=2", "eval.n=16", "eval.metrics=[ood]")


def _example(name: str):
    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inpainting_reports_every_stage_and_mask(tmp_path, capsys):
    run_dir = tmp_path / "run"
    Runner(load_graph("graphs/dual_mcmc.yaml", None, TINY_DUAL_MCMC), run_dir).run()
    inpainting = _example("inpainting")
    inpainting.main([str(run_dir), "--n", "12"])
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| PSNR / SSIM | M3 | M4 | M5 | R20 | R30 | R40 |"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| Inf+Gen", "| Inf+T_z+Gen", "| Inf+T_z+Gen+T_x"]
    values = [float(v) for row in table[2:] for cell in row.split(" | ")[1:] for v in cell.strip(" |").split(" / ")]
    assert len(values) == 36 and all(math.isfinite(v) for v in values)
    assert (run_dir / "inpainting.png").stat().st_size > 0


def test_masks_hide_what_they_say():
    import torch

    make_mask = _example("inpainting").make_mask
    generator = torch.Generator().manual_seed(0)
    assert make_mask("M4", (2, 1, 8, 8), generator)[0, 0, 2:6, 2:6].sum() == 0
    assert make_mask("M4", (2, 1, 8, 8), generator).sum() == 2 * (64 - 16)
    hidden = 1 - make_mask("R30", (400, 1, 8, 8), generator).mean()
    assert abs(hidden - 0.3) < 5 * math.sqrt(0.3 * 0.7 / (400 * 64))


def test_python_graph_is_short_run_built_in_python():
    built, from_file = _example("python_graph").build(), ebmgraph.load("graphs/short_run.yaml")
    built.update({"name": from_file.name, "paper": from_file.paper, "train": from_file.get("train")})
    assert built.spec == from_file.spec
    assert built.to_yaml() == from_file.to_yaml()


def test_python_graph_checks_draws_trains_and_evaluates(tmp_path, capsys):
    run_dir = tmp_path / "run"
    evaluation = _example("python_graph").main([str(run_dir), "--steps", "2", "--tiny"])
    assert evaluation["step"] == 2 and math.isfinite(evaluation["metrics"]["fd"])
    assert (run_dir / "graph.png").stat().st_size > 0 and (run_dir / "samples" / "fresh_3steps.png").exists()
    assert [record["step"] for record in ebmgraph.open_run(run_dir).metrics] == [2]  # the last step is logged
    assert f"fresh chains: {run_dir / 'samples' / 'fresh_3steps.png'}" in capsys.readouterr().out


def test_conditional_sampling_draws_instance_class_and_composed_rows(tmp_path, capsys):
    from tests.conftest import FAST

    run_dir = tmp_path / "run"
    Runner(load_graph("graphs/clel.yaml", None, (*FAST, "eval.metrics=[fd]")), run_dir).run()
    accuracy = _example("conditional_sampling").main([str(run_dir), "--per-row", "2"])
    assert sorted(accuracy) == list(range(10)) and all(0 <= a <= 1 for a in accuracy.values())
    assert (run_dir / "conditional.png").stat().st_size > 0
    assert capsys.readouterr().out.count("of its conditional samples are classified as") == 10
