"""The step plan: the one immutable result of checking a graph. Codegen prints it, ``ebmgraph
check`` describes it, ``ebmgraph draw`` renders it, and the program builds and runs it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs
import networkx as nx

from ebmgraph.nodes.catalog import NODES
from ebmgraph.nodes.node import Bank, Kernel, Node
from ebmgraph.nodes.ports import Value
from ebmgraph.spec.schema import GraphSpec


@attrs.frozen
class Edge:
    """``source.source_port -> target.target_port``; a ``delay`` edge is a bank write, applied at
    the end of the step."""

    source: str
    source_port: str
    target: str
    target_port: str
    delay: bool = False


@attrs.frozen
class PhasePlan:
    """One update phase: ``drawn_once`` runs before the ``repeat`` repetitions (the samples of a
    repeated phase and what they are drawn from), ``nodes`` in each of them; then the values in
    ``watches`` are checked finite and each optimizer steps on the sum of its ``updates`` losses."""

    optimizers: tuple[str, ...]
    repeat: int
    drawn_once: tuple[str, ...]
    nodes: tuple[str, ...]
    watches: tuple[tuple[str, str], ...]
    updates: tuple[tuple[str, tuple[str, ...]], ...]


def is_energy_kernel(cls: type[Node]) -> bool:
    """A kernel on an energy model: one that can draw evaluation samples."""
    return issubclass(cls, Kernel) and any(p.name == "energy" for p in cls.inputs)


@attrs.frozen(eq=False)
class StepPlan:
    """A checked graph: nodes in execution order, every edge with its propagated value (type and
    shape), the phases, the delayed bank writes (``delays``), the returned samples (node, port).
    ``graph`` is the DAG of same-step edges (bank delay edges left out)."""

    spec: GraphSpec
    graph: nx.DiGraph
    order: list[str]
    edges: tuple[Edge, ...]
    values: Mapping[tuple[str, str], Value] = attrs.field(converter=MappingProxyType)
    parameter_counts: Mapping[str, int] = attrs.field(converter=MappingProxyType)
    phases: tuple[PhasePlan, ...]
    samples: tuple[str, str] | None

    def node_type(self, name: str) -> type[Node]:
        return NODES.get(self.spec.all_nodes()[name].type)

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.target == name and not e.delay]

    def delays(self) -> list[Edge]:
        return [e for e in self.edges if e.delay]

    def stops_gradient(self, edge: Edge) -> bool:
        """True when the edge carries a constant for learning (it leaves a stop-gradient output)."""
        return any(p.name == edge.source_port and p.stop_gradient for p in self.node_type(edge.source).outputs)

    def members(self, capability: type[Node]) -> list[str]:
        """Nodes of that capability, in order."""
        return [n for n in self.order if issubclass(self.node_type(n), capability)]

    def kernels(self) -> list[str]:
        """Kernels on an energy model, in order."""
        return [n for n in self.order if is_energy_kernel(self.node_type(n))]

    def banks(self) -> list[str]:
        return self.members(Bank)
