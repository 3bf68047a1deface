"""A compiled graph: real models, nodes and optimizers, and the generated step function."""

from __future__ import annotations

import inspect
import linecache
import traceback
import types

import torch

from ebmgraph.errors import DataError, DivergenceError, NodeError
from ebmgraph.engine.check import check_and_build
from ebmgraph.engine.codegen import node_location, generate
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.distributed import broadcast_models, rank_spec
from ebmgraph.engine.plan import StepPlan
from ebmgraph.engine.updates import Updater
from ebmgraph.nodes.node import Bank, Stateful
from ebmgraph.spec.schema import GraphSpec


def usable_device(name: str | torch.device) -> torch.device:
    """``name`` as a torch device this machine has; a DataError saying what to do otherwise."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DataError(f"unknown device {str(name)!r} ({str(error).splitlines()[0]}); use e.g. cpu, cuda, cuda:1 "
                        "(train.device or --device)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {str(name)!r} asked for (train.device or --device), but this machine has no CUDA "
                        "device: run with --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DataError(f"device {str(name)!r} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                        "device(s)")
    return device


class Program:
    """Everything a run needs: ``program.step(step_number)`` runs one compiled training step.
    Rank ``rank`` of ``world_size`` data-parallel processes (torch.distributed initialized) draws
    its share of the graph's batch and averages its gradients with the others' (engine/distributed.py)."""

    def __init__(self, spec: GraphSpec, device: str | torch.device | None = None, rank: int = 0,
                 world_size: int = 1):
        self.spec = spec
        self.device = usable_device(device or spec.train.device)
        self.rank, self.world_size = rank, world_size
        built = check_and_build(rank_spec(spec, world_size), self.device)
        self.plan: StepPlan = built.plan
        self.models = built.models
        self.nodes = built.nodes
        if world_size > 1:
            broadcast_models(self.models)
        self.updater = Updater(spec, self.models, world_size)
        self.source = generate(self.plan)
        self.filename = f"<ebmgraph step: {spec.name}>"
        linecache.cache[self.filename] = (len(self.source.text), None, self.source.text.splitlines(True),
                                          self.filename)
        namespace: dict = {}
        exec(compile(self.source.text, self.filename, "exec"), namespace)
        self._train_step = namespace["train_step"]
        self._node_namespace = types.SimpleNamespace(**self.nodes)

    def plot_reference(self) -> torch.Tensor | None:
        """Data points drawn under 2-D sample plots (None for images)."""
        data = self.nodes["data"]
        return data.reference(2000) if len(data.sample_shape) == 1 else None

    def banks(self) -> dict[str, Bank]:
        return {name: self.nodes[name] for name in self.plan.banks()}

    def stateful(self) -> dict[str, Stateful]:
        """Stateful nodes other than banks (banks are stored in HDF5)."""
        return {name: node for name, node in self.nodes.items() if isinstance(node, Stateful)
                and not isinstance(node, Bank)}

    def context(self, step: int, diagnostics_wanted: bool = True) -> StepContext:
        return StepContext(self.spec.seed, step, self.device, self.rank,
                           max_abs_energy=self.spec.train.max_abs_energy, diagnostics_wanted=diagnostics_wanted,
                           compile_mode=self.spec.train.compile_mode)

    def step(self, step: int, diagnostics_wanted: bool = True
             ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, StepContext]:
        """Run training step ``step`` (0-based); returns (losses, samples, context with diagnostics).
        With ``train.precision: bf16`` the step runs under bf16 autocast on the run's device."""
        ctx = self.context(step, diagnostics_wanted)
        if self.spec.train.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.spec.train.precision == "bf16"):
                losses, samples = self._train_step(ctx, self._node_namespace, self.updater)
        except DivergenceError:
            raise
        except Exception as error:
            node = self._failing_node(error)
            if node is None:
                raise
            node_type = self.spec.all_nodes()[node].type
            raise NodeError(f"{node_location(self.plan, node)}: node '{node}' ({node_type}) failed at step {step + 1}: "
                            f"{type(error).__name__}: {error}{self._plugin_line(node, error)}") from error
        return losses, samples, ctx

    def _plugin_line(self, node: str, error: BaseException) -> str:
        """For a node type from a plugin, where in the plugin's own file the error arose."""
        cls = type(self.nodes[node])
        if cls.__module__.split(".")[0] == "ebmgraph":
            return ""
        source = inspect.getsourcefile(cls)
        own = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == source]
        return f" (at {own[-1].filename}:{own[-1].lineno}, in {own[-1].name})" if own else ""

    def _failing_node(self, error: BaseException) -> str | None:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == self.filename]
        return self.source.line_to_node.get(frames[-1].lineno) if frames else None
