"""The summary ``ebmgraph check`` prints: kernels with their resolved (a, b, T), order, parameters."""

from __future__ import annotations

from ebmgraph.engine.check import CheckedGraph
from ebmgraph.nodes.node import Kernel


def describe_checked(checked: CheckedGraph) -> str:
    spec = checked.spec
    nodes = spec.all_nodes()
    profile = f", profile '{spec.profile}'" if spec.profile else ""
    lines = [f"graph '{spec.name}'{profile}: ok", "", "node order:"]
    for index, name in enumerate(checked.order, 1):
        outputs = ", ".join(f"{port}: {value.describe()}" for (node, port), value in checked.values.items()
                            if node == name)
        lines.append(f"  {index:>2}. {name} ({nodes[name].type}) -> {outputs}")
    for edge in checked.delays():
        lines.append(f"      {edge.source} -> {edge.target}.{edge.target_port} (delay: written at the end of the step)")
    lines += ["", "kernels (x <- x - a grad E / T + b xi):"]
    for name in [n for n in checked.order if issubclass(checked.node_type(n), Kernel)]:
        lines.append(f"  {name} ({nodes[name].type}): {nodes[name].config.describe()}")
    lines += ["", "models:"]
    for name, model in spec.models.items():
        lines.append(f"  {name} ({model.type}): {checked.parameter_counts[name]:,} parameters")
    lines += ["", "optimizers:"]
    for name, opt in spec.optimizers.items():
        lines.append(f"  {name} ({opt.type}): models [{', '.join(opt.models)}] <- losses [{', '.join(opt.losses)}]")
    return "\n".join(lines)
