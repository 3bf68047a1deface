"""JEM (graphs/jem.yaml): the classifier energy's E(x) and E(x, y) by hand, the accuracy metric,
the compiled step's gradient against a hand transcription of JEM's loss, and the default
profile end to end through ``ebmgraph run`` and ``ebmgraph eval``."""

import copy
import json
import math

import pytest
import torch

from captured_gradients import captured_gradients
from ebmgraph.cli import main
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program
from ebmgraph.eval.accuracy import classification_accuracy
from ebmgraph.eval.protocol import default_metrics
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.data import Digits, Moons
from ebmgraph.store.run_files import EVAL_FILE
from tests.conftest import FAST

CPU = torch.device("cpu")


def classifier(**config):
    cls = MODELS.get("conv_classifier")
    torch.manual_seed(0)
    return cls.build(cls.Config(channels=4, **config), (1, 8, 8))


def test_energies_of_known_logits():
    """Head weights zero and biases log(1), ..., log(10): f(x) = those biases for every x, so
    E(x) = -log(1 + ... + 10) = -log 55 and E(x, y) = -log(y + 1)."""
    model = classifier()
    head = model.body[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.arange(1, 11, dtype=torch.float32).log())
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 3, 9, 4, 0])
    assert model.logits(x).shape == (5, 10)
    torch.testing.assert_close(model(x), torch.full((5,), -math.log(55)), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.class_energy(x, y), -(y + 1).float().log(), rtol=0, atol=1e-7)


def test_marginal_energy_is_minus_logsumexp_of_logits():
    model = classifier(stages=2)
    x, y = torch.randn(7, 1, 8, 8), torch.arange(7)
    logits = model.logits(x).double()
    by_hand = -logits.exp().sum(dim=1).log()
    torch.testing.assert_close(model(x).double(), by_hand, rtol=1e-6, atol=1e-6)
    assert torch.equal(model.class_energy(x, y), -model.logits(x)[torch.arange(7), y])
    with pytest.raises(ValueError, match=r"expected samples of shape \(B, 1, 8, 8\)"):
        model(torch.randn(2, 1, 4, 4))


class _Scores(torch.nn.Module):
    """A "classifier" whose logits are its input."""

    def logits(self, x):
        return x


def test_classification_accuracy():
    labels = torch.tensor([0, 1, 2, 3])
    scores = torch.nn.functional.one_hot(labels, 4).float()
    assert classification_accuracy(_Scores(), scores, labels, CPU, batch_size=3) == 1.0
    assert classification_accuracy(_Scores(), scores, labels.roll(1), CPU) == 0.0
    assert classification_accuracy(_Scores(), scores, torch.tensor([0, 1, 0, 0]), CPU) == 0.5


def test_accuracy_is_a_default_metric_of_classifiers_on_labelled_data():
    digits = Digits("data", Digits.Config(), {}, CPU)
    moons = Moons("data", Moons.Config(), {}, CPU)
    assert default_metrics(digits, classifier=True) == ["accuracy", "fd", "modes", "ood"]
    assert default_metrics(digits) == ["fd", "modes", "ood"]
    assert "accuracy" not in default_metrics(moons, classifier=True)


# --- golden: the compiled step against JEM's loss written out ---

STEPS, STEP_SIZE, NOISE = 3, 1.0, 0.01
TINY = ("data.batch_size=6", "models.energy.channels=4", f"nodes.negatives.steps={STEPS}", "nodes.bank.capacity=20",
        "train.progress=false")


def _jem_gradient(f, x, y, x0, noise, terms=("ce", "cd")):
    """log p(x, y) = log p(y|x) + log p(x) (eq. 8) by hand: cross-entropy of softmax f(x) (eq. 4)
    plus CD on E(x) = -log sum_y exp f(x)[y] (eq. 7) with x- from SGLD,
    x <- x - a dE/dx + b xi from the bank's draw x0 (JEM's x + a d/dx logsumexp f + b xi)."""
    def energy(z):
        return -f.logits(z).exp().sum(dim=1).log()

    x_minus = x0
    for _ in range(STEPS):
        z = x_minus.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(z).sum(), z)
        x_minus = (z - STEP_SIZE * grad + NOISE * torch.randn(z.shape, generator=noise)).detach()
    logits = f.logits(x)
    cross_entropy = (logits.exp().sum(dim=1).log() - logits[torch.arange(len(y)), y]).mean()
    cd = energy(x).mean() - energy(x_minus).mean()
    loss = ("ce" in terms) * cross_entropy + ("cd" in terms) * cd
    return torch.autograd.grad(loss, list(f.parameters()))


def test_compiled_step_gradient_is_jems():
    spec = load_graph("graphs/jem.yaml", None, TINY)
    program = Program(spec)
    before = copy.deepcopy(program.models["energy"])
    bank = copy.deepcopy(program.nodes["bank"])  # the bank as the step reads it
    captured = captured_gradients(program)
    program.step(0)

    ctx = StepContext(spec.seed, 0, CPU)
    batch = program.nodes["data"](ctx)
    x0 = bank(ctx, like=batch["x"])["x"]
    expected = _jem_gradient(before, batch["x"], batch["y"], x0, ctx.generator("negatives"))
    for got, want in zip(captured["optimizer"], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # each term matters: either one alone is a different gradient
    for terms in (("ce",), ("cd",)):
        alone = _jem_gradient(before, batch["x"], batch["y"], x0, ctx.generator("negatives"), terms)
        assert not all(torch.allclose(g, a, rtol=1e-3, atol=1e-5) for g, a in zip(captured["optimizer"], alone))


# --- end to end ---

def test_default_profile_runs_and_evaluates_accuracy(tmp_path, capsys):
    out = tmp_path / "jem"
    overrides = [arg for override in (*FAST, "eval.n=40") for arg in ("--set", override)]
    assert main(["run", "graphs/jem.yaml", "--out", str(out), *overrides]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/cross_entropy", "loss/cd", "cross_entropy/accuracy", "cd/gap"} <= set(records[-1])
    (out / EVAL_FILE).unlink()
    assert main(["eval", str(out)]) == 0
    metrics = json.loads((out / EVAL_FILE).read_text())["metrics"]
    assert {"accuracy", "fd", "modes_covered", "auroc_uniform_noise"} <= set(metrics)
    correct = metrics["accuracy"] * 360  # the digits test split
    assert 0 <= metrics["accuracy"] <= 1 and abs(correct - round(correct)) < 1e-3
    assert "accuracy" in capsys.readouterr().out


def test_paper_profile_runs_and_evaluates_on_cifar_shaped_data(tmp_path, write_cifar):
    """The paper profile end to end on fake CIFAR-10 batches, with tiny sizes: its WRN-28-10
    layout is kept (three stages of residual blocks), only narrower."""
    from ebmgraph.engine.load import load_graph
    from ebmgraph.runs.runner import Runner

    write_cifar(tmp_path / "cifar", per_batch=8)
    spec = load_graph("graphs/jem.yaml", "paper", (
        "train.device=cpu", f"data.root={tmp_path / 'cifar'}", "data.batch_size=4", "train.steps=2",
        "train.progress=false", "train.sample_every=1", "train.checkpoint_every=1", "models.energy.widths=[8, 8, 8]",
        "models.energy.blocks_per_stage=1", "models.energy.channels=8", "nodes.negatives.steps=1",
        "nodes.bank.capacity=16", "eval.n=8", "eval.steps=1", "eval.metrics=[accuracy, ood]"))
    run = tmp_path / "run"
    Runner(spec, run).run()
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and "fd" not in metrics  # digits metrics do not apply to CIFAR
