"""Build the models and nodes a graph spec names, on a device (optimizers: engine/updates.py);
the checker calls these once per graph."""

from __future__ import annotations

import torch

from ebmgraph.engine.context import derive_seed
from ebmgraph.nodes.catalog import MODELS, NODES
from ebmgraph.nodes.node import Node
from ebmgraph.nodes.registry import DerivedModelType
from ebmgraph.spec.schema import GraphSpec


class ModelBuildError(Exception):
    """A model type rejected its config or the data's sample shape."""

    def __init__(self, model: str, detail: str):
        super().__init__(detail)
        self.model = model
        self.detail = detail


def build_models(spec: GraphSpec, device: torch.device, shape: tuple[int, ...]) -> dict[str, torch.nn.Module]:
    """Every model of the graph for data samples of ``shape``, primary models first, derived ones
    (EMA) copied from them; 4-D weights channels-last with ``train.channels_last``, and models
    with ``compile: true`` compiled in place (``nn.Module.compile``: the state dict keeps its keys).

    Initial weights come from a generator seeded by the graph seed alone, so they do not depend
    on anything run before."""
    models: dict[str, torch.nn.Module] = {}
    with torch.random.fork_rng(devices=[]):
        for name, model in spec.models.items():
            cls = MODELS.get(model.type)
            if not issubclass(cls, DerivedModelType):
                torch.manual_seed(derive_seed(spec.seed, "model", name))
                try:
                    with torch.device(device):
                        models[name] = cls.build(model.config, shape)
                except (ValueError, RuntimeError) as error:
                    raise ModelBuildError(name, str(error)) from None
    for name, model in spec.models.items():
        cls = MODELS.get(model.type)
        if issubclass(cls, DerivedModelType) and model.config.of in models:
            models[name] = cls.build_from(model.config, models[model.config.of])
    for name, module in models.items():
        if spec.train.channels_last:
            module.to(memory_format=torch.channels_last)
        if spec.models[name].compile:
            module.compile(mode=spec.train.compile_mode)
    return models


def model_role(spec: GraphSpec, name: str) -> str | None:
    """The role of model ``name`` (a derived model has the role of its source)."""
    seen = set()
    while name in spec.models and name not in seen:
        seen.add(name)
        cls = MODELS.get(spec.models[name].type)
        if not issubclass(cls, DerivedModelType):
            return cls.role
        name = spec.models[name].config.of
    return None


def build_node(name: str, spec: GraphSpec, models: dict[str, torch.nn.Module], device: torch.device) -> Node:
    node_spec = spec.all_nodes()[name]
    cls = NODES.get(node_spec.type)
    bound = {port.name: models[node_spec.inputs[port.name]] for port in cls.model_inputs()
             if node_spec.inputs.get(port.name) in models}
    return cls(name, node_spec.config, bound, device)
