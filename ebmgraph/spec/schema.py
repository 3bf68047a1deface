"""attrs classes for the sections of a graph file."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

from ebmgraph.spec.lr_schedule import LRSchedulePiece
from ebmgraph.spec.source import Source


@attrs.define
class TrainSpec:
    """``train:`` how long to run and what to write. ``max_seconds`` ends training early (with the
    final checkpoint and evaluation) once that much wall-clock time has passed. The newest
    ``keep_checkpoints`` checkpoints are kept; with ``keep_best: METRIC`` the checkpoint of the best
    evaluation so far is kept beside them (``keep_best_mode``: ``min``, ``max``, or ``auto``:
    ``max`` for the metrics in ``HIGHER_IS_BETTER``). ``compile_mode`` is the ``torch.compile`` mode of
    models and kernels with ``compile: true``; ``precision: bf16`` runs the step under bf16
    autocast; ``channels_last`` stores the models' 4-D weights channels-last (GPU convolutions)."""

    steps: int = 1000
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 200
    samples: str | None = None
    grid: int = 64
    device: str = "cpu"
    out: str = "runs"
    progress: bool = True
    max_abs_energy: float = 1e6
    max_seconds: float | None = None
    keep_checkpoints: int = 2
    threads: int | None = None
    log: list[Literal["jsonl", "tensorboard"]] = attrs.field(factory=lambda: ["jsonl"])
    keep_best: str | None = None
    keep_best_mode: Literal["auto", "min", "max"] = "auto"
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False

    def best_mode(self) -> Literal["min", "max"]:
        """Whether ``keep_best`` keeps the smallest or the largest value of its metric."""
        if self.keep_best_mode != "auto":
            return self.keep_best_mode
        metric = self.keep_best or ""
        higher = any(metric == prefix or metric.startswith(prefix + "_") for prefix in HIGHER_IS_BETTER)
        return "max" if higher and not metric.endswith(("_se", "_std")) else "min"

    def problems(self) -> list[tuple[str, str]]:
        out = [(key, f"must be >= 1, found {getattr(self, key)}")
               for key in ("steps", "log_every", "sample_every", "checkpoint_every", "grid", "keep_checkpoints")
               if getattr(self, key) < 1]
        if not (math.isfinite(self.max_abs_energy) and self.max_abs_energy > 0):
            out.append(("max_abs_energy", f"must be a finite number > 0, found {self.max_abs_energy}"))
        if self.threads is not None and self.threads < 1:
            out.append(("threads", f"must be >= 1 or null (half the cores), found {self.threads}"))
        if "jsonl" not in self.log:
            out.append(("log", f"must include jsonl (metrics.jsonl is what resume, reports and divergence records "
                               f"read), found {self.log}"))
        if self.max_seconds is not None and not self.max_seconds > 0:
            out.append(("max_seconds", f"must be > 0, found {self.max_seconds}"))
        return out


@attrs.define
class PhaseSpec:
    """One update phase: the optimizers that step together, ``repeat`` times."""

    optimizers: list[str]
    repeat: int = 1


@attrs.define
class ScheduleSpec:
    """``schedule:`` the order of update phases in a step (default: one phase of all optimizers)."""

    phases: list[PhaseSpec] = attrs.field(factory=list)


#: Evaluation metrics (or their prefixes) where larger is better; ``keep_best_mode: auto`` maximizes these.
HIGHER_IS_BETTER = ("accuracy", "conditional_accuracy", "auroc", "inception_score", "modes_covered", "ess",
                    "log_likelihood", "mean_confidence")

Metric = Literal["fd", "modes", "ood", "density", "fid", "inception_score", "accuracy", "conditional", "composition",
                 "mcmc", "log_likelihood"]
#: Metrics of latent-conditional sampling (CLEL eq. 15) with a spherical energy and its representation encoder.
CONDITIONAL_METRICS = ("conditional", "composition")
#: Metrics computed with the Inception network (torch-fidelity and local weights at eval.inception_weights).
INCEPTION_METRICS = ("fid", "inception_score")


@attrs.define
class EvalSpec:
    """``eval:`` how evaluation samples are drawn and which metrics are computed.

    ``source: chains`` runs ``n`` fresh chains from ``init`` (uniform noise on [low, high],
    gaussian noise with ``std``, g(z), z ~ N(0, I), of generator model ``generator`` (plus its
    observation noise sigma with ``generator_noise``: a draw of p(x | z)), or the
    unconditional draws of amortizer model ``amortizer``) through
    the settings of kernel node ``kernel`` for ``steps`` steps
    (defaults: the first kernel and its steps); ``source: bank`` takes ``n`` items of bank node
    ``bank``. The energy scored is ``energy`` (default: the kernel's), its EMA copy when the graph
    has one. ``metrics`` defaults to every metric that applies to the data (digits: fd, modes,
    ood; 2-D toys: density, ood); ``fid`` (Inception FID of the samples against the whole training
    set) and ``inception_score`` need torch-fidelity and local weights at ``inception_weights``.
    ``batch_size`` runs the ``n`` chains in chunks of that many (50,000 FID samples do not fit
    one batch); each chunk draws its own randomness. ``every`` > 0 also evaluates during
    training. ``augment`` names an augment node applied before every ``augment_every`` chain
    steps (Improved CD, Algorithm 2). ``decode`` names a generator model that maps the chains'
    final latents to samples (latent EBMs: the kernel runs on z, the metrics see g(z)).
    ``score`` is the OOD score: ``energy`` (-E(x)) or ``joint`` (-s(x) of CLEL eq. 14, the joint
    energy of x and its latent h(x)/‖h(x)‖ under representation model ``representation``).
    ``conditional`` samples E(x|z_y) (eq. 10) for the set latent z_y of each class and reports
    how many the digits classifier puts in class y; ``composition`` samples eq. 15's sum of two
    set conditions that share one class, both with the ``representation`` model. ``mcmc``
    reports ESS, split R-hat and autocorrelation of fresh chains (and their acceptance).
    ``log_likelihood`` estimates the test log-likelihood under exp(-E) with bidirectional AIS:
    ``ais_chains`` forward chains from a gaussian fitted to the training data and as many test
    points as reverse chains (after ``ais_burn_in`` transitions at the model), ``ais_intermediate``
    distributions on a sigmoid schedule, ``ais_transition`` (hmc or mala) of step ``ais_step_size``
    at each."""

    source: Literal["chains", "bank"] = "chains"
    kernel: str | None = None
    bank: str | None = None
    energy: str | None = None
    steps: int | None = None
    n: int = 500
    batch_size: int | None = None
    init: Literal["uniform", "gaussian", "generator", "amortizer"] = "uniform"
    generator: str | None = None
    generator_noise: bool = False
    amortizer: str | None = None
    decode: str | None = None
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0
    metrics: list[Metric] | None = None
    score: Literal["energy", "joint"] = "energy"
    representation: str | None = None
    every: int = 0
    grid: int = 200
    histogram_grid: int = 16
    inception_weights: str | None = None
    augment: str | None = None
    augment_every: int = 20
    ais_chains: int = 100
    ais_intermediate: int = 500
    ais_transition: Literal["hmc", "mala"] = "hmc"
    ais_step_size: float = 0.05
    ais_burn_in: int = 100

    def problems(self) -> list[tuple[str, str]]:
        out = [(key, f"must be >= 1, found {getattr(self, key)}") for key in ("n",) if getattr(self, key) < 1]
        out += [(key, f"must be >= 2, found {getattr(self, key)}") for key in ("grid", "histogram_grid")
                if getattr(self, key) < 2]
        if self.batch_size is not None and self.batch_size < 1:
            out.append(("batch_size", f"must be >= 1, found {self.batch_size}"))
        if self.steps is not None and self.steps < 0:
            out.append(("steps", f"must be >= 0, found {self.steps}"))
        if self.every < 0:
            out.append(("every", f"must be >= 0 (0: only at the end), found {self.every}"))
        if not self.low < self.high:
            out.append(("high", f"expected low < high, found low={self.low}, high={self.high}"))
        if not self.std > 0:
            out.append(("std", f"must be > 0, found {self.std}"))
        out += [(key, f"must be >= 1, found {getattr(self, key)}") for key in ("ais_chains", "ais_intermediate")
                if getattr(self, key) < 1]
        if self.ais_burn_in < 0:
            out.append(("ais_burn_in", f"must be >= 0, found {self.ais_burn_in}"))
        if not self.ais_step_size > 0:
            out.append(("ais_step_size", f"must be > 0, found {self.ais_step_size}"))
        return out


@attrs.define
class NodeSpec:
    """A node: its registered ``type``, the references wired to its input ports and its config."""

    type: str
    inputs: dict[str, str]
    config: Any


@attrs.define
class ModelSpec:
    """A model: its registered ``type`` and config; ``compile`` wraps it in ``torch.compile``."""

    type: str
    config: Any
    compile: bool = False


@attrs.define
class OptimizerSpec:
    """Binds the parameters of ``models`` to the sum of ``losses``; ``schedule`` is its learning-rate
    schedule (pieces run in sequence; empty: constant)."""

    type: str
    models: list[str]
    losses: list[str]
    clip_grad_norm: float | None
    config: Any
    schedule: list[LRSchedulePiece] = attrs.field(factory=list)


BINDING_KEYS = ("models", "losses", "clip_grad_norm", "schedule")
MODEL_KEYS = ("compile",)


@attrs.define
class GraphSpec:
    """A resolved graph file (profile and ``--set`` overrides applied). ``plugins`` are the user's
    modules and ``.py`` files (absolute paths) that registered node and model types for it."""

    name: str
    paper: str
    seed: int
    data: NodeSpec
    models: dict[str, ModelSpec]
    nodes: dict[str, NodeSpec]
    losses: dict[str, NodeSpec]
    optimizers: dict[str, OptimizerSpec]
    schedule: ScheduleSpec
    train: TrainSpec
    eval: EvalSpec
    plugins: list[str] = attrs.field(factory=list)
    profile: str | None = attrs.field(default=None, eq=False)
    source: Source | None = attrs.field(default=None, eq=False, repr=False)

    def all_nodes(self) -> dict[str, NodeSpec]:
        """Every node by name, in file order: the data node, then ``nodes``, then ``losses``."""
        return {"data": self.data, **self.nodes, **self.losses}

    def node_path(self, name: str) -> tuple[str, ...]:
        if name == "data":
            return ("data",)
        return ("losses", name) if name in self.losses else ("nodes", name)


SECTIONS = ("name", "paper", "seed", "plugins", "data", "models", "nodes", "losses", "optimizers", "schedule", "train",
            "eval", "profiles")
REQUIRED_SECTIONS = ("name", "data", "models", "losses", "optimizers")
