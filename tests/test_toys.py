"""One class per 2-D toy (ebmgraph.nodes.toys): its data node and its exact density use it."""

import attrs
import pytest
import torch

from ebmgraph.engine.context import StepContext
from ebmgraph.eval.density2d import toy_log_density
from ebmgraph.nodes.registry import NODES
from ebmgraph.nodes.toys import TOY_TYPES

CPU = torch.device("cpu")


@pytest.mark.parametrize("type_name", sorted(TOY_TYPES))
def test_data_node_is_made_from_its_toy(type_name):
    toy, node_type = TOY_TYPES[type_name], NODES.get(type_name)
    fields = attrs.fields(node_type.Config)
    assert fields[0].name == "batch_size"
    assert [(f.name, f.default) for f in fields[1:]] == [(f.name, f.default) for f in attrs.fields(toy)]
    assert node_type.doc() == toy.__doc__
    node = node_type("data", node_type.Config(batch_size=8), {}, CPU)
    assert node.distribution == toy()
    x = node(StepContext(seed=1, step=2, device=CPU))["x"]
    assert torch.equal(x, toy().sample(8, StepContext(seed=1, step=2, device=CPU).generator("data")))


def test_config_values_reach_the_toy_and_its_density():
    node_type = NODES.get("rings")
    node = node_type("data", node_type.Config(batch_size=8, scale=4.0, noise=0.2), {}, CPU)
    assert node.distribution == TOY_TYPES["rings"](scale=4.0, noise=0.2)
    points = torch.tensor([[4.0, 0.0], [1.0, 0.0]])
    assert torch.equal(node.distribution.log_density(points),
                       toy_log_density("rings", {"batch_size": 8, "scale": 4.0, "noise": 0.2}, points))


def test_config_validators_come_from_the_toy():
    with pytest.raises(ValueError, match="arms"):
        NODES.get("pinwheel").Config(arms=0)
    with pytest.raises(ValueError, match="batch_size"):
        NODES.get("pinwheel").Config(batch_size=0)
