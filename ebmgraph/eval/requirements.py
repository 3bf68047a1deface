"""What a graph's evaluation needs, checked before training (by ``ebmgraph check`` and at the
start of ``ebmgraph run``): each listed metric applies to the data, and the files and packages the
user must supply for it (Inception weights, torch-fidelity) are there. A run that would stop at
its final evaluation stops before its first step instead."""

from __future__ import annotations

from ebmgraph.engine.plan import StepPlan
from ebmgraph.errors import GraphError
from ebmgraph.eval.inception import inception_problem
from ebmgraph.nodes.toys import TOY_TYPES
from ebmgraph.spec.schema import INCEPTION_METRICS

DIGITS_SHAPE = (1, 8, 8)


def _metric_problem(metric: str, data_type: str, shape: tuple[int, ...]) -> str | None:
    if metric in ("fd", "modes") and shape != DIGITS_SHAPE:
        return (f"metric '{metric}' scores 8x8 digit images with the bundled digits classifier; the samples of "
                f"data '{data_type}' have shape {shape} (images: use fid and inception_score, 2-D points: density)")
    if metric == "density" and data_type not in TOY_TYPES:
        return (f"metric 'density' needs a 2-D toy distribution as data ({', '.join(TOY_TYPES)}); "
                f"data is '{data_type}'")
    if metric in INCEPTION_METRICS and not (len(shape) == 3 and shape[0] in (1, 3)):
        return f"metric '{metric}' needs images with 1 or 3 channels; the samples of data '{data_type}' have shape {shape}"
    return None


def check_evaluation(plan: StepPlan) -> None:
    """Raise GraphError, located at the eval section's keys, for every listed metric that cannot run."""
    spec = plan.spec
    metrics = spec.eval.metrics or []
    shape = tuple(plan.values[("data", "x")].shape[1:])
    found = [(("eval", "metrics"), problem) for metric in metrics
             if (problem := _metric_problem(metric, spec.data.type, shape)) is not None]
    if any(metric in INCEPTION_METRICS for metric in metrics):
        problem = inception_problem(spec.eval.inception_weights)
        if problem is not None:
            found.append((("eval", "inception_weights"), problem))
    if found:
        raise GraphError([spec.source.diagnostic(path, message, key=True) for path, message in found])
