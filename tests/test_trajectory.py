"""``ebmgraph sample --trajectory``: chains in segments with fresh noise, energies at every snapshot, one PNG."""

import matplotlib.image
import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.program import Program
from ebmgraph.runs.runner import Runner
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.engine.load import load_graph
from ebmgraph.viz.trajectory import run_trajectory, save_trajectory_png, segment_bounds

TOY = ("train.steps=2", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
       "train.progress=false", "data.batch_size=32", "models.energy.hidden=16", "nodes.negatives.steps=3",
       "eval.n=32", "eval.steps=3")


def _not_blank(path):
    image = matplotlib.image.imread(path)[..., :3]
    assert image.std() > 0.05 and (image < 0.9).mean() > 0.01, path


def _sample_with_trajectory(run_dir, capsys):
    assert main(["sample", str(run_dir), "--trajectory", "--steps", "6", "--n", "4"]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["fresh_6steps.png", "fresh_6steps_trajectory.png"]
    for path in paths:
        _not_blank(path)
    return paths


def test_sample_trajectory_of_a_digits_run_writes_both_pngs(tmp_path, capsys, fast_graph):
    run_dir = tmp_path / "run"
    Runner(fast_graph("short_run", "train.steps=2"), run_dir).run()
    grid, strip = _sample_with_trajectory(run_dir, capsys)
    height, width = matplotlib.image.imread(strip).shape[:2]
    assert height > width / 2  # 8 chain rows above the energy profile


def test_sample_trajectory_of_a_toy2d_run_writes_both_pngs(tmp_path, capsys):
    run_dir = tmp_path / "toy"
    Runner(load_graph("graphs/short_run.yaml", "toy2d", TOY), run_dir).run()
    _sample_with_trajectory(run_dir, capsys)


@pytest.mark.parametrize("steps, snapshots, bounds", [
    (20, 10, list(range(0, 21, 2))), (6, 10, list(range(7))), (7, 3, [0, 2, 5, 7]), (0, 10, [0, 0]),
])
def test_segments_cover_every_step(steps, snapshots, bounds):
    assert segment_bounds(steps, snapshots) == bounds


def test_trajectory_starts_from_the_eval_noise_and_one_segment_is_the_evaluation_draw(fast_graph):
    evaluation = Evaluation(Program(fast_graph("short_run")))
    trajectory = run_trajectory(evaluation, steps=6, n=3, snapshots=3)
    assert trajectory.steps == [0, 2, 4, 6]
    assert trajectory.states.shape == (4, 3, 1, 8, 8) and trajectory.energies.shape == (4, 3)
    torch.testing.assert_close(trajectory.states[0], evaluation.draw(3, steps=0).cpu())
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(trajectory.energies[-1]),
                                   evaluation.energy(trajectory.states[-1]).float())
    # segment i runs at context step i: one segment is exactly the evaluation's own chains
    single = run_trajectory(evaluation, steps=6, n=3, snapshots=1)
    torch.testing.assert_close(single.states[-1], evaluation.draw(3, steps=6).cpu())
    assert not torch.equal(single.states[-1], trajectory.states[-1])  # later segments draw fresh noise


def test_trajectory_of_a_bank_evaluated_graph_starts_from_noise(tmp_path, fast_graph):
    evaluation = Evaluation(Program(fast_graph("igebm")))
    assert evaluation.eval.source == "bank"
    trajectory = run_trajectory(evaluation, steps=2, n=2, snapshots=2)
    assert trajectory.states[0].abs().max() <= 1.0 and trajectory.states[0].std() > 0.3
    path = save_trajectory_png(evaluation, tmp_path / "deep" / "strip.png", steps=2, n=2, snapshots=2)
    assert path.exists() and not list(path.parent.glob(".*"))  # written atomically, no temporary left
