"""graphs/hat_ebm.yaml end to end (the default, current and no_residual profiles train and evaluate),
the generator-space kernels, and the errors a paired bank gives for wiring it cannot use."""

import json

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.check import check_graph
from ebmgraph.errors import GraphError
from ebmgraph.nodes.catalog import NODES
from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import langevin_chain
from ebmgraph.store.run_files import EVAL_FILE

TINY = ("train.steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
        "train.progress=false", "data.batch_size=16", "models.energy.channels=8", "nodes.negatives.steps=3",
        "nodes.history.capacity=64", "eval.n=32", "eval.steps=3")


@pytest.mark.parametrize("profile", ["default", "current", "no_residual"])
def test_profile_trains_and_evaluates(tmp_path, profile):
    out = tmp_path / profile
    assert main(["run", "graphs/hat_ebm.yaml", "--profile", profile, "--out", str(out),
                 *[a for o in TINY for a in ("--set", o)]]) == 0
    record = json.loads((out / EVAL_FILE).read_text())
    assert record["step"] == 4 and {"fd", "modes_covered"} <= set(record["metrics"])
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kernel = "negatives/residual_norm" if profile != "no_residual" else "negatives/grad_norm"
    assert all(kernel in line for line in lines if "loss/ebm" in line)


class _Quadratic(torch.nn.Module):
    def forward(self, x):
        return 0.5 * (x - 0.3).pow(2).flatten(1).sum(1) + x.flatten(1).sin().sum(1)


class _Target(torch.nn.Module):
    def forward(self, x):
        return 0.5 * (x - 1.0).pow(2).sum(1)


def test_residual_chain_is_the_image_chain_from_the_base():
    """Langevin on Y for H(Y + base) from 0, plus base, is Langevin on x for H from base (the
    identity evaluation chains use), up to rounding."""
    cls = NODES.get("residual_langevin")
    config = cls.Config(steps=20, epsilon=0.05, temperature=0.5, clip_grad_norm=2.0)
    node = cls("negatives", config, {"energy": _Quadratic()}, torch.device("cpu"))
    base = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    ctx = StepContext(0, 3, torch.device("cpu"))
    out = node(ctx, base=base)
    image, _ = langevin_chain(_Quadratic(), base, config, ctx.generator("negatives"))
    torch.testing.assert_close(out["x"], image.position, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["x"] - base, out["residual"])
    assert out["residual"].abs().max() > 0.05


def test_pushforward_chain_moves_latents_on_the_energy_of_their_images():
    cls = NODES.get("pushforward_langevin")
    generator = torch.nn.Linear(3, 4)
    generator.latent_shape = (3,)
    energy = _Target()
    config = cls.Config(steps=200, step_size=0.05, noise=0.0)
    node = cls("chain", config, {"energy": energy, "generator": generator}, torch.device("cpu"))
    init = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    out = node(StepContext(0, 0, torch.device("cpu")), init=init)
    assert energy(out["x"]).mean() < 0.8 * energy(generator(init)).mean()
    torch.testing.assert_close(out["x"], generator(out["z"]).detach())
    plain, _ = langevin_chain(lambda z: energy(generator(z)), init, LangevinParameters(steps=200, step_size=0.05,
                                                                                        noise=0.0), torch.Generator())
    torch.testing.assert_close(out["z"], plain.position)


@pytest.mark.parametrize("overrides, message", [
    (("nodes.history.store_z=null",), "holds Sample of shape (64, 16) as 'z' but nothing writes it: wire input 'store_z'"),
    (("nodes.history.generator=null",), "exactly when it has a generator and 'init: generator'"),
    (("nodes.history.init=uniform",), "set init: generator"),
    (("nodes.history.store_z=data",), "writes Sample of shape (64, 1, 8, 8) into bank 'history', which holds "
                                      "Sample of shape (64, 16) as 'z'"),
    (("nodes.positives.second=prior_z",), "cannot be added to one of shape (64, 1, 8, 8)"),
])
def test_a_paired_bank_refuses_wiring_it_cannot_use(overrides, message):
    with pytest.raises(GraphError) as error:
        check_graph(load_graph("graphs/hat_ebm.yaml", None, overrides))
    text = str(error.value)  # located in the graph file, or at the --set that made the change
    assert message in text and ("graphs/hat_ebm.yaml:" in text or f"--set {overrides[0]}" in text)
