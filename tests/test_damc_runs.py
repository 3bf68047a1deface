"""graphs/damc_lebm.yaml end to end: short runs of its profiles, a repeated phase drawing its
chains once, latent evaluation (amortizer init, prior chains, decoding), resume, and its errors."""

import json
import math

import attrs
import pytest
import torch

from ebmgraph.engine.check import check_graph
from ebmgraph.engine.codegen import generate
from ebmgraph.engine.program import Program
from ebmgraph.runs.runner import Runner
from ebmgraph.errors import GraphError
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.engine.load import load_graph
from ebmgraph.store.run_files import EVAL_FILE, METRICS_FILE
from ebmgraph.viz.trajectory import run_trajectory
from tests.checkpoint_files import final_state

SMALL = ("train.steps=3", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
         "train.progress=false", "data.batch_size=8", "models.amortizer.steps=5", "models.amortizer.widths=[16,16]",
         "nodes.posterior.steps=3", "nodes.prior.steps=3", "eval.n=32", "eval.steps=3")


def _spec(*overrides, profile=None):
    return load_graph("graphs/damc_lebm.yaml", profile, SMALL + overrides)


def test_default_profile_trains_and_evaluates_decoded_samples(tmp_path):
    Runner(_spec(), tmp_path).run()
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert len(records) == 3 and all(math.isfinite(r["loss/amortizer_fit"]) for r in records)
    metrics = json.loads((tmp_path / EVAL_FILE).read_text())["metrics"]
    assert metrics["fd"] > 0 and "auroc_noise" not in metrics


def test_the_repeated_amortizer_phase_draws_its_chains_once():
    """Listing 2: z0 and the posterior chains are drawn once; only the denoising loss runs M = 6 times,
    and the prior chains follow in the generator and energy phase."""
    source = generate(Program(_spec()).plan).text
    loop = source[source.index("for ctx.repeat"):source.index("ctx.repeat = 0")]
    assert "N.amortizer_fit" in loop and "N.posterior" not in loop and "N.initial" not in loop
    assert source.index("N.posterior") < source.index("for ctx.repeat") < source.index("N.prior(")


def test_latent_evaluation_starts_from_the_amortizer_and_decodes():
    program = Program(_spec())
    evaluation = Evaluation(program)
    z = evaluation.initial_states(5)
    assert z.shape == (5, 16)
    samples = evaluation.draw(n=5)
    assert samples.shape == (5, 1, 8, 8) and samples.abs().max() <= 1
    trajectory = run_trajectory(evaluation, steps=4, n=3, snapshots=2)
    assert trajectory.states.shape == (3, 3, 1, 8, 8) and trajectory.energies.shape == (3, 3)


def test_gaussian_evaluation_noise_has_the_latent_shape():
    evaluation = Evaluation(Program(_spec("eval.init=gaussian")))
    assert evaluation.initial_states(4).shape == (4, 16)


def test_paper_profile_steps_on_cifar_shaped_data(tmp_path, write_cifar):
    write_cifar(tmp_path / "cifar")
    spec = _spec(f"data.root={tmp_path / 'cifar'}", "data.batch_size=4", "train.device=cpu",
                 "models.amortizer.widths=[16,16]", profile="paper")
    losses, samples, _ = Program(spec).step(0)
    assert samples.shape == (8, 3, 32, 32) and all(torch.isfinite(v) for v in losses.values())


def test_resume_is_bit_identical(tmp_path):
    spec = _spec("train.steps=4")
    Runner(spec, tmp_path / "whole").run()
    Runner(attrs.evolve(spec, train=attrs.evolve(spec.train, steps=2)), tmp_path / "split").run()
    Runner(spec, tmp_path / "split").run()
    a, b = (final_state(tmp_path / run) for run in ("whole", "split"))
    for model in ("amortizer", "target", "generator", "energy"):
        for key, value in a["models"][model].items():
            assert torch.equal(value, b["models"][model][key]), f"{model}.{key} differs after resume"


@pytest.mark.parametrize("override, message", [
    ("eval.decode=energy", "'energy' is not a generator model"),
    ("eval.amortizer=generator", "eval.init 'amortizer' needs eval.amortizer, an amortizer model; found 'generator'"),
    ("models.amortizer.latent_dim=8", "shape mismatch: node 'initial' gives Sample of shape (8, 8)"),
    ("models.amortizer.log_snr_min=10", "log_snr_min"),
])
def test_errors_name_the_key(override, message):
    with pytest.raises(GraphError) as error:
        check_graph(_spec(override))
    assert message in str(error.value)
