"""``ebmgraph sample``: fresh chains from a trained run's energy, as the graph's eval section says."""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from ebmgraph.engine.build import build_models, build_node
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.runner import GRAPH_FILE
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.noise import GaussianConfig, UniformConfig
from ebmgraph.nodes.registry import DerivedModelType
from ebmgraph.spec.load import load_graph
from ebmgraph.store.checkpoint import load_models
from ebmgraph.viz.grids import save_samples_png


def evaluation_model(spec, name: str) -> str:
    """The EMA copy of model ``name`` when the graph has one, else ``name``."""
    for other, model in spec.models.items():
        if issubclass(MODELS.get(model.type), DerivedModelType) and model.config.of == name:
            return other
    return name


def sample_run(run_dir: Path, n: int | None = None, steps: int | None = None, out: str | None = None,
               device: str | None = None) -> Path:
    spec = load_graph(run_dir / GRAPH_FILE)
    checked = check_graph(spec)
    kernel_name = spec.eval.kernel or checked.kernels()[0]
    device = torch.device(device or "cpu")
    models = build_models(spec, device)
    load_models(run_dir, models)
    kernel_spec = spec.all_nodes()[kernel_name]
    energy = evaluation_model(spec, kernel_spec.inputs["energy"])
    config = attrs.evolve(kernel_spec.config, steps=steps if steps is not None else spec.eval.steps or kernel_spec.config.steps)
    kernel = type(build_node(kernel_name, spec, models, device))(kernel_name, config, {"energy": models[energy]}, device)
    data = build_node("data", spec, models, device)
    count = n or spec.eval.n
    ctx = StepContext(spec.seed, step=0, device=device)
    e = spec.eval
    init_config = UniformConfig(e.low, e.high) if e.init == "uniform" else GaussianConfig(e.std)
    init = init_config.draw((count, *data.sample_shape), ctx.generator("eval:init"), device)
    samples = kernel(ctx, init=init)["x"]
    path = Path(out) if out else run_dir / "samples" / f"fresh_{config.steps}steps.png"
    reference = data.reference(2000) if len(data.sample_shape) == 1 else None
    save_samples_png(samples.cpu(), path, title=f"{spec.name}: {count} fresh chains, {config.steps} steps "
                                                 f"from {spec.eval.init} noise ({energy})", reference=reference)
    return path
