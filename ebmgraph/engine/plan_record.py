"""A step plan as plain JSON data (a run directory's plan.json), and back: drawing a run's graph
needs no second check or build."""

from __future__ import annotations

import networkx as nx

from ebmgraph.engine.plan import Edge, PhasePlan, StepPlan
from ebmgraph.nodes.ports import PortType, Value
from ebmgraph.spec.schema import GraphSpec


def plan_record(plan: StepPlan) -> dict:
    """Everything the plan adds to its graph spec, as JSON-ready data."""
    return {
        "order": list(plan.order),
        "edges": [[e.source, e.source_port, e.target, e.target_port, e.delay] for e in plan.edges],
        "values": [[node, port, value.type.kind, value.type.role, None if value.shape is None else list(value.shape)]
                   for (node, port), value in plan.values.items()],
        "parameter_counts": dict(plan.parameter_counts),
        "phases": [{"optimizers": list(p.optimizers), "repeat": p.repeat, "drawn_once": list(p.drawn_once),
                    "nodes": list(p.nodes), "watches": [list(w) for w in p.watches],
                    "updates": [[opt, list(losses)] for opt, losses in p.updates]} for p in plan.phases],
        "samples": None if plan.samples is None else list(plan.samples),
    }


def plan_from_record(spec: GraphSpec, record: dict) -> StepPlan:
    """The plan ``plan_record`` wrote, for ``spec`` (the same run's resolved graph)."""
    edges = tuple(Edge(*edge) for edge in record["edges"])
    graph = nx.DiGraph()
    graph.add_nodes_from(record["order"])
    graph.add_edges_from((e.source, e.target) for e in edges if not e.delay)
    values = {(node, port): Value(PortType(kind, role), None if shape is None else tuple(shape))
              for node, port, kind, role, shape in record["values"]}
    phases = tuple(PhasePlan(tuple(p["optimizers"]), p["repeat"], tuple(p["drawn_once"]), tuple(p["nodes"]),
                             tuple(tuple(w) for w in p["watches"]),
                             tuple((opt, tuple(losses)) for opt, losses in p["updates"])) for p in record["phases"])
    samples = None if record["samples"] is None else tuple(record["samples"])
    return StepPlan(spec, graph, list(record["order"]), edges, values, record["parameter_counts"], phases, samples)
