"""Dump a resolved GraphSpec back to YAML (loading the dump gives an equal spec)."""

from __future__ import annotations

import yaml

from ebmgraph.spec.convert import unstructure
from ebmgraph.spec.lr_schedule import schedule_value
from ebmgraph.spec.schema import GraphSpec, NodeSpec


def _node(spec: NodeSpec) -> dict:
    return {"type": spec.type, **spec.inputs, **unstructure(spec.config)}


def _plain(value):
    """Tuples become lists so that safe YAML can write them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_dict(spec: GraphSpec) -> dict:
    return _plain({
        "name": spec.name,
        "paper": spec.paper,
        "seed": spec.seed,
        **({"plugins": list(spec.plugins)} if spec.plugins else {}),
        "data": _node(spec.data),
        "models": {name: {"type": m.type, **({"compile": True} if m.compile else {}), **unstructure(m.config)}
                   for name, m in spec.models.items()},
        "nodes": {name: _node(n) for name, n in spec.nodes.items()},
        "losses": {name: _node(n) for name, n in spec.losses.items()},
        "optimizers": {name: {"type": o.type, "models": list(o.models), "losses": list(o.losses),
                              "clip_grad_norm": o.clip_grad_norm, "schedule": schedule_value(o.schedule),
                              **unstructure(o.config)}
                       for name, o in spec.optimizers.items()},
        "schedule": unstructure(spec.schedule),
        "train": unstructure(spec.train),
        "eval": unstructure(spec.eval),
    })


class _Dumper(yaml.SafeDumper):
    """Block mappings, inline lists: ``betas: [0.0, 0.999]``."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def dumps(spec: GraphSpec) -> str:
    """YAML text of the resolved graph (profiles already applied, so none are written)."""
    return yaml.dump(to_dict(spec), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


