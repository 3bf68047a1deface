"""CLEL's nodes and evaluation (graphs/clel.yaml): NT-Xent and the joint and conditional energies by
hand, the checks that name what is missing, and the default profile end to end through
``ebmgraph run`` and ``ebmgraph eval``."""

import json
import math

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.load import load_graph
from ebmgraph.errors import GraphError
from ebmgraph.eval.conditional import ConditionalEnergy, class_latents, set_latent
from ebmgraph.eval.requirements import check_evaluation
from ebmgraph.nodes.contrastive import nt_xent
from ebmgraph.nodes.spherical import SphericalEnergy, SphericalEnergyConfig
from ebmgraph.store.run_files import EVAL_FILE
from tests.conftest import FAST

TAU = 0.2


def _energy(beta=0.5, projection="mlp"):
    torch.manual_seed(0)
    config = SphericalEnergyConfig(channels=4, widths=[4, 8], latent_dim=6, head_hidden=8, projection=projection,
                                   projection_hidden=8, beta=beta)
    return SphericalEnergy.build(config, (1, 8, 8)).double()


def test_nt_xent_of_orthogonal_samples_by_hand():
    """Two samples whose two views coincide and are orthogonal to the other sample's, plus m extra
    negatives orthogonal to all: each of the 4 terms of eq. 13 is -log(e^(1/τ) / (e^(1/τ) + 2 + m))."""
    eye = torch.eye(4, dtype=torch.float64)
    views = torch.cat([eye[:2], eye[:2]])
    for extra, m in ((None, 0), (eye[2:], 2)):
        expected = math.log1p((2 + m) * math.exp(-1 / TAU))
        assert math.isclose(float(nt_xent(views, extra, TAU)), expected, rel_tol=1e-12)


def test_nt_xent_ignores_the_scale_of_its_inputs():
    """Similarities are cosines (eq. 8): rescaling any latent leaves the loss unchanged."""
    generator = torch.Generator().manual_seed(0)
    views, extra = torch.randn(8, 5, generator=generator), torch.randn(3, 5, generator=generator)
    scale = torch.rand(8, 1, generator=generator) + 0.1
    torch.testing.assert_close(nt_xent(views * scale, extra * 7, TAU), nt_xent(views, extra, TAU))


def test_joint_energy_is_the_marginal_minus_beta_times_the_cosine():
    energy = _energy()
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64) * 2 - 1
    z = torch.nn.functional.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    f = energy.features(x)
    direction = energy.direction(f)
    torch.testing.assert_close(energy(x), 0.5 * (f * f).sum(1))
    torch.testing.assert_close(energy.joint(x, z), energy(x) - 0.5 * torch.nn.functional.cosine_similarity(direction, z))
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(5, dtype=torch.float64))


def test_conditions_compose_by_adding_their_energies():
    """Eq. 15: E(x | {a, b}) = E(x | a) + E(x | b) - E(x); one condition is the joint energy E(x, z_a)."""
    energy = _energy()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64) * 2 - 1
    a, b = torch.nn.functional.normalize(torch.randn(2, 6, dtype=torch.float64), dim=1)
    both = ConditionalEnergy(energy, torch.stack([a, b]))(x)
    torch.testing.assert_close(both, ConditionalEnergy(energy, a)(x) + ConditionalEnergy(energy, b)(x) - energy(x))
    torch.testing.assert_close(ConditionalEnergy(energy, a)(x), energy.joint(x, a.expand(4, 6)))


def test_set_latents_are_unit_means_of_each_class():
    encoder = torch.nn.Flatten()
    images = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]).reshape(4, 1, 1, 2)
    labels = torch.tensor([0, 0, 1, 1])
    latents = class_latents(encoder, images, labels, classes=2)
    torch.testing.assert_close(latents[0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(latents[1], set_latent(torch.tensor([[0.0, 1.0], [0.5 ** 0.5, 0.5 ** 0.5]])))


def test_null_unwires_an_optional_input_and_only_an_optional_one():
    spec = load_graph("graphs/clel.yaml", None, ("losses.contrastive.negatives=null",))
    assert "negatives" not in spec.losses["contrastive"].inputs
    with pytest.raises(GraphError, match="null unwires optional ports only"):
        load_graph("graphs/clel.yaml", None, ("losses.contrastive.views=null",))


def test_spherical_nodes_name_the_model_that_does_not_fit():
    spec = load_graph("graphs/clel.yaml", None, ("models.energy.type=conv_energy",))
    with pytest.raises(GraphError) as caught:
        check_graph(spec)
    assert ("nodes.positives.energy: model 'energy' (conv_energy) bound to input 'energy' of node 'positives' "
            "does not fit: needs a spherical_energy model") in str(caught.value)


def test_the_joint_score_needs_a_representation_model_and_a_spherical_energy():
    with pytest.raises(GraphError, match="eval.representation: score 'joint' .* need eval.representation"):
        check_graph(load_graph("graphs/igebm.yaml", None, ("eval.score=joint",)))
    spec = load_graph("graphs/igebm.yaml", None, ("eval.score=joint", "eval.representation=encoder",
                                                  "models.encoder={type: resnet_representation}"))
    with pytest.raises(GraphError, match="eval.score: .* spherical_energy; the evaluation energy is 'energy' "
                                         r"\(conv_energy\)"):
        check_evaluation(check_graph(spec))


def test_default_profile_runs_and_evaluates_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    overrides = [a for o in (*FAST, "eval.n=20") for a in ("--set", o)]
    assert main(["run", "graphs/clel.yaml", "--out", str(out), *overrides]) == 0, capsys.readouterr().err
    metrics = json.loads((out / EVAL_FILE).read_text())["metrics"]
    assert 0 <= metrics["conditional_accuracy"] <= 1 and len(metrics["conditional_confusion"]) == 10
    assert {"composed_precision", "single_precision", "auroc_uniform_noise", "fd"} <= set(metrics)
    assert main(["eval", str(out)]) == 0
    again = json.loads((out / EVAL_FILE).read_text())["metrics"]
    assert again["conditional_accuracy"] == metrics["conditional_accuracy"]
