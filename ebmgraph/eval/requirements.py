"""What a graph's evaluation needs, checked before training (by ``ebmgraph check`` and at the
start of ``ebmgraph run``): each listed metric applies to the data, and the files and packages the
user must supply for it (Inception weights, torch-fidelity) are there. A run that would stop at
its final evaluation stops before its first step instead."""

from __future__ import annotations

from ebmgraph.engine.plan import StepPlan
from ebmgraph.errors import GraphError
from ebmgraph.eval.inception import inception_problem
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.spherical import SphericalEnergy
from ebmgraph.nodes.toys import TOY_TYPES
from ebmgraph.spec.schema import CONDITIONAL_METRICS, INCEPTION_METRICS

DIGITS_SHAPE = (1, 8, 8)


def _metric_problem(metric: str, data_type: str, shape: tuple[int, ...]) -> str | None:
    if metric in CONDITIONAL_METRICS and shape != DIGITS_SHAPE:
        return (f"metric '{metric}' judges conditional samples of 8x8 digit images with the bundled digits classifier; "
                f"the samples of data '{data_type}' have shape {shape}")
    if metric in ("fd", "modes") and shape != DIGITS_SHAPE:
        return (f"metric '{metric}' scores 8x8 digit images with the bundled digits classifier; the samples of "
                f"data '{data_type}' have shape {shape} (images: use fid and inception_score, 2-D points: density)")
    if metric == "density" and data_type not in TOY_TYPES:
        return (f"metric 'density' needs a 2-D toy distribution as data ({', '.join(TOY_TYPES)}); "
                f"data is '{data_type}'")
    if metric in INCEPTION_METRICS and not (len(shape) == 3 and shape[0] in (1, 3)):
        return f"metric '{metric}' needs images with 1 or 3 channels; the samples of data '{data_type}' have shape {shape}"
    return None


def _spherical_problem(plan: StepPlan) -> str | None:
    """Why the evaluation energy cannot give CLEL's joint energy (None: it can)."""
    spec = plan.spec
    kernels = plan.kernels()
    name = spec.eval.energy or (spec.all_nodes()[spec.eval.kernel or kernels[0]].inputs["energy"] if kernels else None)
    if name is not None and MODELS.get(spec.models[name].type) is SphericalEnergy:
        return None
    return (f"score 'joint' and the metrics {', '.join(CONDITIONAL_METRICS)} need the joint energy E(x, z) of a "
            f"spherical_energy; the evaluation energy is {name!r}"
            + (f" ({spec.models[name].type})" if name in spec.models else ""))


def check_evaluation(plan: StepPlan) -> None:
    """Raise GraphError, located at the eval section's keys, for every listed metric that cannot run
    (and at train.keep_best when no periodic evaluation gives it a metric)."""
    spec = plan.spec
    metrics = spec.eval.metrics or []
    shape = tuple(plan.values[("data", "x")].shape[1:])
    found = [(("eval", "metrics"), problem) for metric in metrics
             if (problem := _metric_problem(metric, spec.data.type, shape)) is not None]
    if any(metric in INCEPTION_METRICS for metric in metrics):
        problem = inception_problem(spec.eval.inception_weights)
        if problem is not None:
            found.append((("eval", "inception_weights"), problem))
    if "mcmc" in metrics and not plan.kernels() and spec.eval.kernel is None:
        found.append((("eval", "metrics"), "metric 'mcmc' diagnoses evaluation chains; the graph has no kernel node"))
    if spec.eval.score == "joint" or any(metric in CONDITIONAL_METRICS for metric in metrics):
        problem = _spherical_problem(plan)
        if problem is not None:
            found.append((("eval", "score" if spec.eval.score == "joint" else "metrics"), problem))
    if spec.train.keep_best and not spec.eval.every:
        found.append((("train", "keep_best"), f"keeping the best checkpoint by '{spec.train.keep_best}' needs a "
                                              "periodic evaluation: set eval.every"))
    if found:
        raise GraphError([spec.source.diagnostic(path, message, key=True) for path, message in found])
