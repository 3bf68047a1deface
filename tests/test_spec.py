"""Graph files: profiles, --set overrides, and the exact YAML round trip of a resolved graph."""

import pytest

from ebmgraph.errors import GraphError
from ebmgraph.spec.dump import dumps
from ebmgraph.engine.load import load_graph, loads_graph

GRAPHS = ["graphs/short_run.yaml", "graphs/igebm.yaml", "graphs/improved_cd.yaml"]


@pytest.mark.parametrize("path", GRAPHS)
@pytest.mark.parametrize("profile", ["default", "toy2d", "paper"])
def test_round_trip_is_exact(path, profile):
    spec = load_graph(path, profile)
    text = dumps(spec)
    again = loads_graph(text, "dumped.yaml")
    assert again == spec
    assert dumps(again) == text


def test_default_profile_is_applied_when_none_is_given():
    assert load_graph("graphs/short_run.yaml").profile == "default"
    toy = load_graph("graphs/short_run.yaml", "toy2d")
    assert toy.data.type == "eight_gaussians"
    assert toy.models["energy"].type == "mlp_energy"
    assert toy.nodes["negatives"].config.steps == 60


def test_profile_that_changes_a_type_replaces_the_mapping():
    toy = load_graph("graphs/short_run.yaml", "toy2d")
    assert toy.nodes["noise"].config.low == -4.0
    assert toy.models["energy"].config.hidden == 128  # conv_energy keys are gone, not merged


def test_set_overrides_parse_yaml_values():
    spec = load_graph("graphs/igebm.yaml", None, ("train.steps=7", "nodes.negatives.clamp=[-2, 2]",
                                                   "nodes.bank.write=fifo"))
    assert spec.train.steps == 7
    assert spec.nodes["negatives"].config.clamp == (-2.0, 2.0)
    assert spec.nodes["bank"].config.write == "fifo"


def test_set_errors_name_the_override():
    with pytest.raises(GraphError) as error:
        load_graph("graphs/igebm.yaml", None, ("train.steps=many",))
    assert str(error.value) == ("--set train.steps=many: train.steps: expected an integer, "
                                "found 'many' (a string)")


def test_profile_errors_point_into_the_profile():
    text = """
name: g
data: {type: digits}
models: {energy: {type: conv_energy}}
losses: {}
optimizers: {}
profiles:
  default:
    train: {steps: lots}
"""
    with pytest.raises(GraphError) as error:
        loads_graph(text, "g.yaml")
    assert str(error.value) == "g.yaml:9:20: train.steps: expected an integer, found 'lots' (a string)"
