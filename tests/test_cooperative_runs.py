"""graphs/cooperative.yaml end to end: the default (digits) and toy2d profiles train and evaluate
through ``ebmgraph run``; the MLP generator of the toy profile maps latents to points."""

import json

import torch

from ebmgraph.cli import main
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.store.run_files import EVAL_FILE

TINY = ("train.steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
        "train.progress=false", "data.batch_size=16", "nodes.revised.steps=3", "eval.n=32", "eval.steps=3")


def _run(tmp_path, profile):
    out = tmp_path / profile
    args = ["run", "graphs/cooperative.yaml", "--profile", profile, "--out", str(out),
            *[a for o in TINY for a in ("--set", o)]]
    assert main(args) == 0
    return json.loads((out / EVAL_FILE).read_text())


def test_default_profile_trains_and_evaluates(tmp_path):
    record = _run(tmp_path, "default")
    assert record["step"] == 4 and {"fd", "modes_covered", "auroc_uniform_noise"} <= set(record["metrics"])


def test_toy_profile_trains_and_evaluates(tmp_path):
    record = _run(tmp_path, "toy2d")
    assert {"kl_data_model", "auroc_uniform_box"} <= set(record["metrics"])


def test_mlp_generator_maps_latents_to_samples_of_the_data_shape():
    cls = MODELS.get("mlp_generator")
    generator = cls.build(cls.Config(latent_dim=3, hidden=8, layers=2), (2,))
    z = torch.randn(5, 3)
    assert generator(z).shape == (5, 2) and generator.latent_shape == (3,)
    x = generator(z).detach()
    torch.testing.assert_close(generator.log_likelihood(x, z), torch.full((5,), -2 * (0.5 * torch.log(
        torch.tensor(2 * torch.pi)) + torch.log(torch.tensor(0.1))).item()))
