"""The node contract: ``Node`` (ports, config, ``infer`` and ``__call__``) and the capability bases
every node type derives from exactly one of. The engine decides by capability, never by name:
what a later phase reuses (``SampleSource``), what is checkpointed (``Stateful``, ``Bank``), what
may be bound to an optimizer (``LossNode``), what can draw evaluation chains (``Kernel``)."""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar

import attrs
import torch
from torch.func import functional_call

from ebmgraph.nodes.ports import LOSS, Port, ShapeError, Value


@attrs.define
class NoConfig:
    """A node type without configuration."""


def run_on_meta(module: torch.nn.Module, *inputs: torch.Tensor):
    """``module(*inputs)`` on meta tensors, wherever the module's parameters live: shapes only, no
    arithmetic, and the module's own state untouched."""
    state = {name: torch.empty_like(t, device="meta")
             for name, t in [*module.named_parameters(), *module.named_buffers()]}
    with torch.no_grad(), torch.device("meta"):
        return functional_call(module, state, inputs)


class Node(abc.ABC):
    """Base of node types; a node type derives from one capability base below.

    Subclasses declare ``type_name``, an attrs ``Config`` class and their ``inputs`` and
    ``outputs`` ports. Model ports are bound once at build time (``self.models[port]``); tensor
    ports are the keyword arguments of ``__call__``, which returns a dict of outputs. The engine
    detaches every value leaving a ``stop_gradient`` port.
    """

    type_name: ClassVar[str]
    family: ClassVar[str]  # the capability's label (drawings, references); set by the capability base
    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    def __init__(self, name: str, config: Any, models: dict[str, torch.nn.Module], device: torch.device):
        self.name = name
        self.config = config
        self.models = models
        self.device = device

    @classmethod
    def model_inputs(cls) -> tuple[Port, ...]:
        return tuple(p for p in cls.inputs if p.type.kind == "model")

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @abc.abstractmethod
    def infer(self, inputs: dict[str, Value]) -> dict[str, Value]:
        """Output values (types and shapes) from input values, without real tensors."""

    @abc.abstractmethod
    def __call__(self, ctx, **inputs) -> dict[str, torch.Tensor]:
        """Run the node on real tensors; ``ctx`` gives the step, the node's generator and logging."""

    def check_model_input(self, model_port: str, input_port: str, value: Value) -> tuple[int, ...]:
        """Run the bound model on a meta tensor of ``value``'s shape; return the output shape."""
        try:
            out = run_on_meta(self.models[model_port], torch.empty(value.shape, device="meta"))
        except (RuntimeError, ValueError, IndexError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ShapeError(input_port, f"model bound to '{model_port}' cannot take shape {tuple(value.shape)}: "
                                         f"{first_line}") from None
        return tuple((out[0] if isinstance(out, tuple) else out).shape)

    def check_energy_input(self, input_port: str, value: Value, model_port: str = "energy") -> tuple[int, ...]:
        """Like ``check_model_input``, for an energy: it must give one scalar per sample."""
        shape = self.check_model_input(model_port, input_port, value)
        if shape != tuple(value.shape[:1]):
            raise ShapeError(input_port, f"energy must give one scalar per sample, shape {tuple(value.shape[:1])}, "
                                         f"but gives {shape}")
        return shape


class Stateful(abc.ABC):
    """A node with state across steps; the engine checkpoints it whatever its capability."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """The state to checkpoint."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""


class SampleSource(Node):
    """A node whose outputs are draws (data, noise, augmentations, chains, bank reads): a later
    phase of the step reuses them instead of drawing again, and a repeated phase draws them once
    before its repetitions."""


class DataSource(SampleSource):
    """Training data: ``sample_shape``, fixed ``reference`` samples and the ``test_split``."""

    family = "data"
    sample_shape: tuple[int, ...]

    @abc.abstractmethod
    def reference(self, n: int) -> torch.Tensor:
        """``n`` fixed training samples."""

    @abc.abstractmethod
    def test_split(self) -> torch.Tensor | None:
        """Held-out samples, or None."""

    def train_split(self) -> torch.Tensor | None:
        """Every training sample (the FID reference set), or None for data drawn afresh each step."""
        return None


class NoiseSource(SampleSource):
    """Fresh random states (chain initializations, latent draws)."""

    family = "noise"


class Augmentation(SampleSource):
    """A random transformation of samples; ``augment`` is also used by evaluation chains."""

    family = "augment"

    @abc.abstractmethod
    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The transformed batch."""


class Kernel(SampleSource):
    """An MCMC transition kernel: chains whose states leave on stop-gradient ports."""

    family = "kernel"


class AmortizedDraw(SampleSource):
    """Draws from a learned sampler (an amortizer) whose parameters are frozen while drawing."""

    family = "amortizer"


class Bank(SampleSource, Stateful):
    """A delay element: read at the start of a step, its ``delay`` inputs written at the end. Its
    ``state_dict`` is a ``BankState`` (nodes/bank_state.py), the schema banks.h5 stores."""

    family = "bank"
    held: ClassVar[dict[str, str]] = {"store": "x"}
    """Each delay input and the output that reads back what it wrote (their shapes must agree)."""

    @abc.abstractmethod
    def write(self, ctx, **delayed: torch.Tensor) -> None:
        """Store the delay inputs at the end of the step."""


class ModelCall(Node):
    """Evaluates a model on samples; every phase recomputes it with the parameters as they are then."""

    family = "model"


class BatchOperation(Node):
    """Rearranges batches (e.g. concatenation) without models or randomness."""

    family = "batch"


class LossNode(Node):
    """A scalar to minimize: lives in a graph's ``losses`` section, bound to an optimizer."""

    family = "loss"


CAPABILITIES: tuple[type[Node], ...] = (DataSource, NoiseSource, Augmentation, Kernel, AmortizedDraw, Bank, ModelCall,
                                        BatchOperation, LossNode)


def contract_problems(cls: type) -> list[str]:
    """What keeps ``cls`` from being a node type (empty when it honours the contract)."""
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        return [f"{cls!r} is not a subclass of ebmgraph's Node"]
    problems = []
    bases = [base.__name__ for base in CAPABILITIES if issubclass(cls, base)]
    if len(bases) != 1:
        problems.append(f"derives from {' and '.join(bases) or 'no capability base'}; it must derive from exactly one "
                        f"of {', '.join(base.__name__ for base in CAPABILITIES)}")
    if not (isinstance(getattr(cls, "type_name", None), str) and cls.type_name.isidentifier()):
        problems.append("has no 'type_name' that is a Python identifier")
    has_loss = any(port.type == LOSS for port in cls.outputs)
    if issubclass(cls, LossNode) != has_loss:
        problems.append("is a LossNode without a Loss output" if not has_loss
                        else "has a Loss output but is not a LossNode")
    if any(port.delay for port in cls.inputs) and not issubclass(cls, Bank):
        problems.append("has a delay input but is not a Bank")
    return problems + _call_problems(cls)


def _call_problems(cls: type[Node]) -> list[str]:
    """``__call__(self, ctx, ...)`` must take exactly the tensor input ports as keywords (delay
    inputs go to ``write``), with a default for each optional one."""
    parameters = list(inspect.signature(cls.__call__).parameters.values())[2:]
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return []
    ports = {p.name: p for p in cls.inputs if p.type.kind != "model" and not p.delay}
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if set(names) != set(ports):
        return [f"__call__(self, ctx, {', '.join(names)}) must take exactly its tensor input ports as keywords: "
                f"{', '.join(ports) or 'none'}"]
    return [f"__call__ gives optional input port '{p.name}' no default" for p in parameters
            if ports[p.name].optional and p.default is p.empty]


def defined_at(cls: type) -> str:
    """``file:line`` of a class's definition (plugins are named by it in error messages)."""
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return cls.__module__
