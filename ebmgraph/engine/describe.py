"""The summary ``ebmgraph check`` prints from the step plan: node order, phases, kernels with their
resolved (a, b, T), models with parameter counts, optimizers with their learning-rate schedules."""

from __future__ import annotations

from ebmgraph.engine.plan import StepPlan
from ebmgraph.nodes.node import Kernel
from ebmgraph.spec.lr_schedule import describe_schedule


def _phase_line(index: int, phase) -> str:
    repeat = f" x{phase.repeat}" if phase.repeat > 1 else ""
    once = f"drawn once: {', '.join(phase.drawn_once)}; then " if phase.drawn_once else ""
    updates = ", ".join(f"{opt} <- {' + '.join(losses)}" for opt, losses in phase.updates)
    return (f"  {index}. {', '.join(phase.optimizers)}{repeat}: {once}computes {', '.join(phase.nodes) or 'nothing'}; "
            f"updates {updates}")


def describe_plan(plan: StepPlan) -> str:
    spec = plan.spec
    nodes = spec.all_nodes()
    profile = f", profile '{spec.profile}'" if spec.profile else ""
    lines = [f"graph '{spec.name}'{profile}: ok", "", "node order:"]
    for index, name in enumerate(plan.order, 1):
        outputs = ", ".join(f"{port}: {value.describe()}" for (node, port), value in plan.values.items()
                            if node == name)
        lines.append(f"  {index:>2}. {name} ({nodes[name].type}) -> {outputs}")
    for edge in plan.delays():
        lines.append(f"      {edge.source} -> {edge.target}.{edge.target_port} (delay: written at the end of the step)")
    lines += ["", "phases:"] + [_phase_line(i, phase) for i, phase in enumerate(plan.phases, 1)]
    lines += ["", "kernels (Langevin: x <- x - a grad E / T + b xi; each samples exp(-E / effective T)):"]
    for name in plan.members(Kernel):
        lines.append(f"  {name} ({nodes[name].type}): {nodes[name].config.describe()}")
    lines += ["", "models:"]
    for name, model in spec.models.items():
        lines.append(f"  {name} ({model.type}): {plan.parameter_counts[name]:,} parameters")
    lines += ["", "optimizers:"]
    for name, opt in spec.optimizers.items():
        lines.append(f"  {name} ({opt.type}): models [{', '.join(opt.models)}] <- losses [{', '.join(opt.losses)}]")
        if opt.schedule:
            lr = getattr(opt.config, "lr", None)
            lines.append(f"    schedule: {describe_schedule(opt.schedule, lr if isinstance(lr, float) else None)}")
    return "\n".join(lines)
