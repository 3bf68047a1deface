"""``Graph``: a graph file as a Python object. Read and change any key (each change validated at
once by the loader, with the file format's messages), build a graph from scratch, then check,
compile, draw, dump to YAML or run it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ebmgraph.api.edits import resolve_changes
from ebmgraph.api.run import Run
from ebmgraph.api.views import Entries, Entry, shown
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.codegen import generate
from ebmgraph.engine.describe import describe_plan
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.plan import StepPlan
from ebmgraph.errors import Diagnostic, GraphError
from ebmgraph.runs.runner import Runner, new_run_dir
from ebmgraph.spec.convert import describe as describe_value
from ebmgraph.spec.dump import dumps, to_dict
from ebmgraph.spec.overrides import ENTRY_SECTIONS
from ebmgraph.spec.schema import GraphSpec
from ebmgraph.spec.source import Source
from ebmgraph.spec.suggest import did_you_mean, one_of
from ebmgraph.viz.drawing import draw

BUILT_IN_PYTHON = "<python>"


def _value(key: str, doc: str) -> property:
    return property(lambda graph: graph.get(key), lambda graph, value: graph.set(key, value), doc=doc)


def _mapping(key: str, doc: str) -> property:
    return property(lambda graph: Entry(graph, key), doc=doc)


def _entries(section: str, doc: str) -> property:
    return property(lambda graph: Entries(graph, section), doc=doc)


class Graph:
    """A resolved graph (profile and overrides applied) that can be read and changed key by key.

    Make one with ``ebmgraph.load(path)`` or ``Graph.new(name, data=...)``. A change that the
    graph-file format refuses raises GraphError naming the key and what was expected, and leaves
    the graph as it was; references between entries, shapes and bindings are checked by ``check()``."""

    def __init__(self, spec: GraphSpec):
        self._spec = spec

    @classmethod
    def new(cls, name: str, *, data: Mapping[str, Any], seed: int = 0, paper: str = "") -> Graph:
        """An empty graph (no models, nodes, losses or optimizers yet) with its data node."""
        sections = [("name", name), ("paper", paper), ("seed", seed), ("data", data)]
        sections += [(section, {}) for section in ENTRY_SECTIONS]
        return cls(resolve_changes(Source(data={}, file=BUILT_IN_PYTHON), None, sections, f"Graph.new({name!r})"))

    # --- reading -------------------------------------------------------------------------------------

    name = _value("name", "The graph's name (names run directories and picture titles).")
    paper = _value("paper", "The citation of the algorithm.")
    seed = _value("seed", "The one seed all randomness derives from.")
    data = _mapping("data", "The data node: ``graph.data.batch_size = 32``.")
    schedule = _mapping("schedule", "The update phases: ``graph.schedule.phases``.")
    train = _mapping("train", "How long to run and what to write: ``graph.train.steps = 100``.")
    eval = _mapping("eval", "How evaluation samples are drawn: ``graph.eval.n = 64``.")
    models = _entries("models", "Models by name: ``graph.models['energy'].channels``.")
    nodes = _entries("nodes", "Nodes by name: ``graph.nodes['negatives'].steps = 20``.")
    losses = _entries("losses", "Losses by name.")
    optimizers = _entries("optimizers", "Optimizers by name: ``graph.optimizers['energy_optimizer'].lr``.")

    @property
    def plugins(self) -> list[str]:
        """The modules and ``.py`` files that register the graph's own types (imported when set)."""
        return list(self._spec.plugins)

    @plugins.setter
    def plugins(self, value: list[str]) -> None:
        self.set("plugins", value)

    @property
    def spec(self) -> GraphSpec:
        """The resolved GraphSpec (the engine's input; read it, change the graph instead)."""
        return self._spec

    @property
    def profile(self) -> str | None:
        """The name of the profile applied when the file was loaded."""
        return self._spec.profile

    def to_dict(self) -> dict:
        """The resolved graph as plain data, every default included, as ``to_yaml`` writes it."""
        return to_dict(self._spec)

    def get(self, key: str) -> Any:
        """The resolved value at dotted ``key``, e.g. ``graph.get("nodes.negatives.steps")``."""
        value = self.to_dict()
        parts = key.split(".")
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth]) or "the graph"
            if not isinstance(value, dict):
                raise KeyError(f"{where} is {describe_value(value)}, it has no key '{part}'")
            if part not in value:
                raise KeyError(f"{where} has no key '{part}'{did_you_mean(part, value)}; "
                               f"its keys: {one_of(value) if value else 'none'}")
            value = value[part]
        return value

    # --- changing ------------------------------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Set dotted ``key`` to plain ``value`` as ``--set key=value`` does: a mapping merges into the
        mapping there (replacing it when its ``type`` differs), ``None`` in place of a mapping removes
        it, anything else replaces."""
        self.update({key: value})

    def update(self, changes: Mapping[str, Any]) -> None:
        """Several ``set``s validated together, for keys that must change at once (e.g. a kernel's
        parameterization: ``{"nodes.negatives.step_size": None, "nodes.negatives.noise": None,
        "nodes.negatives.epsilon": 0.1}``)."""
        self._apply(changes.items(), "set " + ", ".join(f"{key}={shown(value)}" for key, value in changes.items()))

    def add_model(self, name: str, type: str, /, **keys: Any) -> Entry:
        """Add model ``name`` of model type ``type`` with that type's ``keys``."""
        return self._add("models", name, type, keys)

    def add_node(self, name: str, type: str, /, **keys: Any) -> Entry:
        """Add node ``name`` of node type ``type``: references for its input ports, values for its keys."""
        return self._add("nodes", name, type, keys)

    def add_loss(self, name: str, type: str, /, **keys: Any) -> Entry:
        """Add loss ``name`` (a node type with a Loss output), wired as ``add_node`` wires."""
        return self._add("losses", name, type, keys)

    def add_optimizer(self, name: str, type: str, /, **keys: Any) -> Entry:
        """Add optimizer ``name``: ``models=[...]``, ``losses=[...]``, optional ``clip_grad_norm`` and
        ``schedule`` (e.g. ``{"type": "warmup", "steps": 2000}``), and the optimizer type's keys (``lr``, ...)."""
        return self._add("optimizers", name, type, keys)

    def add_phase(self, *optimizers: str, repeat: int = 1) -> None:
        """Append an update phase of ``optimizers`` run ``repeat`` times per step to the schedule."""
        phases = self.get("schedule.phases") + [{"optimizers": list(optimizers), "repeat": repeat}]
        self._apply([("schedule.phases", phases)], f"add_phase({', '.join(map(repr, optimizers))}, repeat={repeat!r})")

    def _add(self, section: str, name: str, type: str, keys: dict[str, Any]) -> Entry:
        what = ENTRY_SECTIONS[section]
        origin = f"add_{what}({name!r}, {type!r})"
        if name in self.get(section):
            raise GraphError([Diagnostic(origin, None, None, f"{section}.{name}",
                                         f"{what} '{name}' already exists; assign graph.{section}[{name!r}] = "
                                         f"{{'type': ...}} to replace it")])
        self._apply([(f"{section}.{name}", {"type": type, **keys})], origin)
        return Entry(self, f"{section}.{name}")

    def _changed(self, changes: Iterable[tuple[str, Any]], origin: str) -> GraphSpec:
        return resolve_changes(self._spec.source, self._spec.profile, changes, origin)

    def _apply(self, changes: Iterable[tuple[str, Any]], origin: str) -> None:
        """Make ``changes`` (dotted key, value) together, or raise GraphError naming ``origin``."""
        self._spec = self._changed(changes, origin)

    # --- using ---------------------------------------------------------------------------------------

    def check(self) -> StepPlan:
        """Check references, types, cycles, bindings and shapes (models on the meta device, so nothing
        is computed); the step plan, or GraphError listing every problem."""
        return check_graph(self._spec)

    def describe(self) -> str:
        """The summary ``ebmgraph check`` prints: node order, phases, resolved kernels, parameter counts."""
        return describe_plan(self.check())

    def compile(self) -> str:
        """The generated Python source of the training step (``ebmgraph compile``)."""
        return generate(self.check()).text

    def draw(self, path: str | Path | None = None, *, engine: str = "auto") -> str:
        """The dataflow as a text tree; with ``path``, write it as .svg, .png, .mmd (Mermaid) or .dot
        and say what was written (``ebmgraph draw``)."""
        try:
            return draw(self.check(), None if path is None else str(path), engine=engine)
        except SystemExit as error:  # the command line's refusal of an unknown suffix
            raise ValueError(str(error)) from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The resolved graph as a graph file (no profiles: they are applied); also written to ``path``."""
        text = dumps(self._spec)
        if path is not None:
            Path(path).write_text(text)
        return text

    def run(self, out_dir: str | Path | None = None, *, steps: int | None = None, device: str | None = None) -> Run:
        """Train in run directory ``out_dir`` (default ``train.out/NAME-TIMESTAMP``; one holding a checkpoint
        is continued) for ``steps`` in all (default ``train.steps``, the graph is not changed)."""
        spec = self._spec if steps is None else self._changed([("train.steps", steps)], f"run(steps={steps!r})")
        run_dir = Path(out_dir) if out_dir is not None else new_run_dir(spec.train.out, spec.name)
        Runner(spec, run_dir, device).run()
        return Run(run_dir)

    def __repr__(self) -> str:
        profile = f" (profile '{self.profile}')" if self.profile else ""
        sections = "; ".join(f"{section} {', '.join(getattr(self._spec, section)) or '-'}" for section in ENTRY_SECTIONS)
        return f"<Graph '{self._spec.name}'{profile}: {sections}>"


def load(path: str | Path, profile: str | None = None, overrides: Iterable[str] = (),
         plugins: Iterable[str] = ()) -> Graph:
    """Load a graph file as ``ebmgraph run`` does: its plugins and ``plugins`` imported, profile
    ``profile`` (default: ``default`` when the file has one), then each ``--set``-style override
    ``"key.path=value"``."""
    return Graph(load_graph(path, profile, tuple(overrides), tuple(plugins)))
