"""What each phase of a step computes: the scheduling rules of the step plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import networkx as nx

from ebmgraph.engine.plan import PhasePlan
from ebmgraph.nodes.node import Node, SampleSource
from ebmgraph.nodes.ports import ENERGY, LOSS, Value
from ebmgraph.spec.schema import GraphSpec


def _phase_blocks(spec: GraphSpec, graph: nx.DiGraph, order: tuple[str, ...], phases: list[tuple[list[str], int]],
                  draws: Callable[[str], bool]) -> list[list[str]]:
    """Nodes each phase computes: the ancestors of its losses, except samples (``SampleSource``
    outputs) drawn by an earlier phase of the step; energies and losses are recomputed with the
    parameters as they are then. A node no phase needs (e.g. a picture) goes to the first phase by
    which its inputs exist."""
    done: set[str] = set()
    needed_per_phase = []
    for optimizers, _ in phases:
        losses = {loss for opt in optimizers for loss in spec.optimizers[opt].losses}
        needed = set(losses).union(*(nx.ancestors(graph, loss) for loss in losses))
        needed_per_phase.append(needed - done)
        done |= {n for n in needed if draws(n)}
    if needed_per_phase:
        phase_of = {n: i for i, needed in enumerate(needed_per_phase) for n in needed}
        for name in order:
            if name not in phase_of:
                phase_of[name] = max((phase_of[p] for p in graph.predecessors(name)), default=0)
                needed_per_phase[phase_of[name]].add(name)
    return [[n for n in order if n in needed] for needed in needed_per_phase]


def _drawn_once(graph: nx.DiGraph, block: list[str], draws: Callable[[str], bool]) -> list[str]:
    """The nodes of a repeated phase computed before its repetitions: its samples and what they are
    drawn from (DAMC, Listing 2: the amortizer's M updates fit the same chains' output)."""
    samples = {n for n in block if draws(n)}
    once = samples.union(*(nx.ancestors(graph, n) for n in samples))
    return [n for n in block if n in once]


def schedule(spec: GraphSpec, graph: nx.DiGraph, order: tuple[str, ...], phases: list[tuple[list[str], int]],
             values: Mapping[tuple[str, str], Value], node_type: Callable[[str], type[Node]]) -> tuple[PhasePlan, ...]:
    """The phases of the step plan, from the checked schedule ``phases`` (optimizers, repeat)."""
    def draws(name: str) -> bool:
        return issubclass(node_type(name), SampleSource)

    plans = []
    for block, (optimizers, repeat) in zip(_phase_blocks(spec, graph, order, phases, draws), phases):
        once = _drawn_once(graph, block, draws) if repeat > 1 else []
        repeated = [n for n in block if n not in once]
        watches = tuple(key for key, value in values.items() if key[0] in repeated and value.type in (LOSS, ENERGY))
        updates = tuple((opt, tuple(spec.optimizers[opt].losses)) for opt in optimizers)
        plans.append(PhasePlan(tuple(optimizers), repeat, tuple(once), tuple(repeated), watches, updates))
    return tuple(plans)
