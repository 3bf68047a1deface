"""The eval protocol: `ebmgraph eval` writes every metric and the PNG, deterministically."""

import json

import pytest

from ebmgraph.cli import main
from ebmgraph.runs.runner import Runner
from ebmgraph.errors import DataError
from ebmgraph.eval.protocol import Evaluation
from ebmgraph.engine.load import load_graph
from ebmgraph.store.run_files import EVAL_FILE, EVAL_LOG, EVAL_PNG

DIGITS_METRICS = {"fd", "fd_floor", "fd_floor_matched", "modes_covered", "class_entropy", "mean_confidence",
                  "histogram", "auroc_uniform_noise", "auroc_gaussian_noised", "auroc_pixel_permuted",
                  "auroc_inverted"}
TOY_METRICS = {"kl_data_model", "kl_model_data", "tv", "kl_data_samples", "auroc_uniform_box"}


@pytest.fixture(autouse=True)
def _classifier_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EBMGRAPH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_eval_command_writes_every_metric_and_the_png(tmp_path, fast_graph, capsys):
    run_dir = tmp_path / "run"
    Runner(fast_graph("short_run"), run_dir).run()
    (run_dir / EVAL_FILE).unlink()
    (run_dir / EVAL_PNG).unlink()

    assert main(["eval", str(run_dir), "--n", "40"]) == 0
    record = json.loads((run_dir / EVAL_FILE).read_text())
    assert json.loads(capsys.readouterr().out) == record
    assert record["step"] == 4 and record["n"] == 40 and record["source"] == "chains"
    assert DIGITS_METRICS <= set(record["metrics"])
    assert (run_dir / EVAL_PNG).stat().st_size > 0
    assert len((run_dir / EVAL_LOG).read_text().splitlines()) == 2  # end of training, then the command


def test_evaluation_is_deterministic_for_a_fixed_seed(tmp_path, fast_graph):
    runner = Runner(fast_graph("short_run"), tmp_path / "run")
    runner.run()
    first, samples_a = Evaluation(runner.program).run(32)
    second, samples_b = Evaluation(runner.program).run(32)
    assert first["metrics"] == second["metrics"]
    assert samples_a.equal(samples_b)


def test_toy_evaluation_uses_the_exact_density(tmp_path, fast_graph):
    overrides = ("train.steps=2", "train.progress=false", "nodes.negatives.steps=2", "eval.n=64", "eval.steps=2",
                 "eval.grid=60")
    runner = Runner(load_graph("graphs/igebm.yaml", "toy2d", overrides), tmp_path / "toy")
    runner.run()
    record = json.loads((tmp_path / "toy" / EVAL_FILE).read_text())
    assert TOY_METRICS <= set(record["metrics"])
    assert record["metrics"]["kl_data_model"] > 0 and 0 <= record["metrics"]["tv"] <= 1


def test_bank_source_draws_bank_contents(tmp_path, fast_graph):
    runner = Runner(fast_graph("igebm", "eval.source=bank", "eval.metrics=[ood]"), tmp_path / "bank")
    runner.run()
    samples = Evaluation(runner.program).draw(16)
    stored = runner.program.nodes["bank"].storage
    assert all(any(s.equal(row) for row in stored) for s in samples)


def test_periodic_evaluation_during_training(tmp_path, fast_graph):
    Runner(fast_graph("short_run", "eval.every=2", "eval.metrics=[ood]"), tmp_path / "run").run()
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / EVAL_LOG).read_text().splitlines()]
    assert steps == [2, 4]


def test_fid_names_the_missing_weights_file(tmp_path, fast_graph):
    missing = tmp_path / "pt_inception.pth"
    runner = Runner(fast_graph("short_run", "eval.metrics=[ood]", f"eval.inception_weights={missing}"),
                    tmp_path / "run")
    runner.run()
    runner.program.spec.eval.metrics = ["fid"]
    with pytest.raises(DataError, match=f"Inception weights '{missing}' not found"):
        Evaluation(runner.program).run(8)


def _toy_record(run_dir, *overrides):
    settings = ("train.steps=2", "train.progress=false", "nodes.negatives.steps=2", "eval.n=64", "eval.steps=10",
                "eval.grid=60", "eval.source=chains", *overrides)
    Runner(load_graph("graphs/igebm.yaml", "toy2d", settings), run_dir).run()
    return json.loads((run_dir / EVAL_FILE).read_text())


def test_eval_states_the_kernel_temperature_and_scores_the_tempered_density(tmp_path):
    cold = _toy_record(tmp_path / "cold", "nodes.negatives.eta=null", "nodes.negatives.step_size=0.05",
                       "nodes.negatives.noise=0.1")
    metrics = cold["metrics"]
    assert cold["effective_temperature"] == pytest.approx(0.1) and "exp(-E / 0.1)" in cold["temperature_note"]
    assert {"kl_data_model_tempered", "kl_model_data_tempered", "tv_tempered"} <= set(metrics)
    assert metrics["kl_data_model_tempered"] != metrics["kl_data_model"]
    warm = _toy_record(tmp_path / "warm")  # the profile's chains run at temperature 1
    assert warm["effective_temperature"] == pytest.approx(1.0) and "temperature_note" not in warm
    assert not any(key.endswith("_tempered") for key in warm["metrics"])
    # the histogram KL of 64 exact draws on the 16 x 16 grid: large, as most cells are empty
    assert 1.0 < warm["metrics"]["kl_data_samples_floor"] < warm["metrics"]["kl_data_samples"]


def test_fresh_chains_get_mcmc_diagnostics_and_ais_on_request(tmp_path):
    record = _toy_record(tmp_path / "run", "eval.metrics=[mcmc,log_likelihood]", "eval.ais_chains=20",
                         "eval.ais_intermediate=10", "eval.ais_burn_in=2")
    metrics = record["metrics"]
    assert metrics["mcmc_chains"] == 64 and metrics["mcmc_draws"] == 5
    assert len(metrics["mcmc_autocorrelation_energy"]) == 5 and metrics["mcmc_rhat_energy"] > 0
    assert {"log_z_lower", "log_z_upper", "log_likelihood_lower", "log_likelihood_upper", "bits_per_dim_lower",
            "log_z_grid", "ais_consistent"} <= set(metrics)
    assert metrics["log_likelihood_upper"] == pytest.approx(metrics["log_likelihood_lower"] + metrics["log_z_upper"]
                                                            - metrics["log_z_lower"])
