"""Check a graph: references, port types, cycles, bindings and the schedule before anything is
built; then build each model and node once (on the meta device for ``ebmgraph check``) and
propagate shapes with meta tensors, so a mismatch names both nodes. The result is the step plan."""

from __future__ import annotations

import attrs
import networkx as nx
import torch

from ebmgraph.errors import DataError, Diagnostic, GraphError
from ebmgraph.engine.build import ModelBuildError, build_models, build_node, model_role
from ebmgraph.engine.plan import Edge, StepPlan, is_energy_kernel
from ebmgraph.engine.schedule import schedule
from ebmgraph.nodes.catalog import NODES
from ebmgraph.nodes.ports import LOSS, Port, ShapeError, Value, model_ref
from ebmgraph.nodes.node import Augmentation, Bank, DataSource, LossNode, Node, defined_at
from ebmgraph.spec.schema import CONDITIONAL_METRICS, GraphSpec
from ebmgraph.spec.suggest import did_you_mean, one_of


class _Checker:
    def __init__(self, spec: GraphSpec):
        self.spec = spec
        self.nodes = spec.all_nodes()
        self.errors: list[Diagnostic] = []
        self.edges: list[Edge] = []

    def error(self, path, message: str, *, key: bool = False) -> None:
        self.errors.append(self.spec.source.diagnostic(tuple(path), message, key=key))

    def raise_if_errors(self) -> None:
        if self.errors:
            raise GraphError(self.errors)

    # references and port types
    def resolve_reference(self, name: str, port: Port, ref: str) -> tuple[str, str] | None:
        path = self.spec.node_path(name) + (port.name,)
        source, dot, source_port = ref.partition(".")
        if source not in self.nodes and source in self.spec.models:
            self.error(path, f"type mismatch: '{source}' is a model ({model_ref(model_role(self.spec, source))}) "
                             f"but node '{name}' input '{port.name}' expects {port.type}")
            return None
        if source not in self.nodes:
            hint = did_you_mean(source, self.nodes)
            self.error(path, f"input '{port.name}' of node '{name}' refers to unknown node '{source}'{hint}")
            return None
        source_cls = NODES.get(self.nodes[source].type)
        outputs = {p.name: p for p in source_cls.outputs}
        source_port = source_port if dot else source_cls.outputs[0].name
        if source_port not in outputs:
            self.error(path, f"node '{source}' ({source_cls.type_name}) has no output port '{source_port}'"
                             f"{did_you_mean(source_port, outputs)}; its outputs: {one_of(outputs)}")
            return None
        if outputs[source_port].type != port.type:
            self.error(path, f"type mismatch: node '{source}' output '{source_port}' is {outputs[source_port].type} "
                             f"but node '{name}' input '{port.name}' expects {port.type}")
            return None
        return source, source_port

    def check_model_port(self, name: str, port: Port, ref: str | None) -> None:
        path = self.spec.node_path(name) + (port.name,)
        if ref not in self.spec.models:
            hint = did_you_mean(ref, self.spec.models)
            known = one_of(self.spec.models) if self.spec.models else "none"
            self.error(path, f"input '{port.name}' of node '{name}' needs a model ({port.type}); "
                             f"unknown model '{ref}'{hint}; models: {known}")
            return
        role = model_role(self.spec, ref)
        if role != port.type.role:
            self.error(path, f"type mismatch: model '{ref}' has role '{role}' but node '{name}' input "
                             f"'{port.name}' expects {port.type}")

    def wire(self) -> None:
        for name, node in self.nodes.items():
            cls = NODES.get(node.type)
            for port in cls.inputs:
                ref = node.inputs.get(port.name)
                if ref is None:
                    if not port.optional:
                        self.error(self.spec.node_path(name),
                                   f"missing input '{port.name}' ({port.type}) of node '{name}' ({cls.type_name})",
                                   key=True)
                    continue
                if port.type.kind == "model":
                    self.check_model_port(name, port, ref)
                    continue
                resolved = self.resolve_reference(name, port, ref)
                if resolved:
                    self.edges.append(Edge(resolved[0], resolved[1], name, port.name, port.delay))

    def check_models(self) -> None:
        for name, model in self.spec.models.items():
            of = getattr(model.config, "of", None)
            if of is not None and of not in self.spec.models:
                self.error(("models", name, "of"), f"model '{name}' copies unknown model '{of}'"
                                                   f"{did_you_mean(of, self.spec.models)}")

    def check_optimizers(self) -> None:
        bound: set[str] = set()
        derived = {n for n, m in self.spec.models.items() if hasattr(m.config, "of")}
        for name, opt in self.spec.optimizers.items():
            for index, model in enumerate(opt.models):
                if model not in self.spec.models:
                    self.error(("optimizers", name, "models", index),
                               f"optimizer '{name}' binds unknown model '{model}'{did_you_mean(model, self.spec.models)}")
                elif model in derived:
                    self.error(("optimizers", name, "models", index),
                               f"optimizer '{name}' binds model '{model}', a copy updated by the engine, not trained")
            for index, loss in enumerate(opt.losses):
                if loss not in self.spec.losses:
                    self.error(("optimizers", name, "losses", index),
                               f"optimizer '{name}' uses unknown loss '{loss}'{did_you_mean(loss, self.spec.losses)}")
                bound.add(loss)
        for name in self.spec.losses:
            cls = NODES.get(self.spec.losses[name].type)
            if LOSS not in {p.type for p in cls.outputs}:
                self.error(("losses", name, "type"), f"'{name}' is in the losses section but node type "
                                                     f"'{cls.type_name}' has no Loss output")
            elif name not in bound:
                self.error(("losses", name), f"loss '{name}' is bound to no optimizer; add it to an optimizer's "
                                             "'losses' list", key=True)
        for name, node in self.spec.nodes.items():
            if issubclass(NODES.get(node.type), LossNode):
                self.error(("nodes", name, "type"), f"node '{name}' is a loss ({node.type}); move it to the losses "
                                                    "section and bind it to an optimizer")

    def check_phases(self) -> list[tuple[list[str], int]]:
        phases = self.spec.schedule.phases
        if not phases:
            return [(list(self.spec.optimizers), 1)]
        scheduled = set()
        for index, phase in enumerate(phases):
            if phase.repeat < 1:
                self.error(("schedule", "phases", index, "repeat"), f"must be >= 1, found {phase.repeat}")
            for j, opt in enumerate(phase.optimizers):
                if opt not in self.spec.optimizers:
                    self.error(("schedule", "phases", index, "optimizers", j),
                               f"unknown optimizer '{opt}'{did_you_mean(opt, self.spec.optimizers)}")
                scheduled.add(opt)
        for name in self.spec.optimizers:
            if name not in scheduled:
                self.error(("schedule", "phases"), f"optimizer '{name}' is in no phase of the schedule")
        return [(list(p.optimizers), p.repeat) for p in phases]

    def check_gradient_paths(self) -> None:
        """Each loss of an optimizer must depend, along edges that carry gradients (not from a
        stop-gradient port, not delayed), on a node that uses one of the optimizer's models."""
        carrying = nx.DiGraph()
        carrying.add_nodes_from(self.nodes)
        carrying.add_edges_from((e.source, e.target) for e in self.edges if not e.delay and not self._stops(e))
        for name, opt in self.spec.optimizers.items():
            for index, loss in enumerate(opt.losses):
                if loss not in self.nodes:
                    continue
                upstream = nx.ancestors(carrying, loss) | {loss}
                if not any(self._uses(node) & set(opt.models) for node in upstream):
                    self.error(("optimizers", name, "losses", index),
                               f"loss '{loss}' has no gradient path to the models of optimizer '{name}' "
                               f"({', '.join(opt.models)}): no node it depends on through gradient-carrying edges "
                               "uses them (kernel samples are constants; bind the loss to the optimizer of a model "
                               "it evaluates)")

    def _stops(self, edge: Edge) -> bool:
        outputs = NODES.get(self.nodes[edge.source].type).outputs
        return any(p.name == edge.source_port and p.stop_gradient for p in outputs)

    def _uses(self, node: str) -> set[str]:
        """The models bound to the node's model ports."""
        cls = NODES.get(self.nodes[node].type)
        return {self.nodes[node].inputs[p.name] for p in cls.model_inputs() if p.name in self.nodes[node].inputs}

    def order(self, graph: nx.DiGraph) -> list[str]:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            position = {name: i for i, name in enumerate(self.nodes)}
            return list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
        path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        self.error(self.spec.node_path(cycle[0][0]), f"cycle: {path} (only a bank's 'store' input may close a loop)")
        return []

    # shapes
    def propagate(self, order: list[str], built: dict[str, Node]) -> dict[tuple[str, str], Value]:
        values: dict[tuple[str, str], Value] = {}
        for name in order:
            incoming = [e for e in self.edges if e.target == name and not e.delay]
            if any((e.source, e.source_port) not in values for e in incoming):
                continue  # an upstream node already failed
            inputs = {e.target_port: values[(e.source, e.source_port)] for e in incoming}
            try:
                outputs = built[name].infer(inputs)
            except ShapeError as error:
                feeder = next((e for e in self.edges if e.target == name and e.target_port == error.port), None)
                model = self.nodes[name].inputs.get(error.port)
                if feeder is None and model is None:  # an optional model port left unbound
                    message = f"node '{name}' input '{error.port}': {error.detail}"
                elif feeder is None:  # a model port: the bound model does not fit the node
                    message = (f"model '{model}' ({self.spec.models[model].type}) bound to input '{error.port}' of "
                               f"node '{name}' does not fit: {error.detail}")
                else:
                    message = (f"shape mismatch: node '{feeder.source}' gives {inputs[error.port].describe()} to "
                               f"input '{error.port}' of node '{name}': {error.detail}")
                self.error(self.spec.node_path(name) + (error.port,), message)
                continue
            if not self.check_inferred(name, outputs):
                continue
            values.update({(name, port): value for port, value in outputs.items()})
        for edge in self.edges:
            if edge.delay and (edge.source, edge.source_port) in values:
                self.check_bank_write(edge, values)
        self.check_bank_pairs(values)
        return values

    def check_bank_write(self, edge: Edge, values: dict[tuple[str, str], Value]) -> None:
        """What a delay edge writes must fit what its bank's output reads back (per chain for
        ``write: back``, per item otherwise)."""
        output = NODES.get(self.nodes[edge.target].type).held.get(edge.target_port, "x")
        written, held = values[(edge.source, edge.source_port)], values.get((edge.target, output))
        per_chain = getattr(self.nodes[edge.target].config, "write", None) == "back"
        compared = slice(0, None) if per_chain else slice(1, None)
        if held is not None and written.shape[compared] != held.shape[compared]:
            self.error(self.spec.node_path(edge.target) + (edge.target_port,),
                       f"shape mismatch: node '{edge.source}' writes {written.describe()} into bank "
                       f"'{edge.target}', which holds {held.describe()} as '{output}'")

    def check_bank_pairs(self, values: dict[tuple[str, str], Value]) -> None:
        """A bank output that holds something per sample must have its delay input wired."""
        for name in self._members(list(self.nodes), Bank):
            for port, output in NODES.get(self.nodes[name].type).held.items():
                held = values.get((name, output))
                if held is not None and held.shape[1:] != (0,) and port not in self.nodes[name].inputs:
                    self.error(self.spec.node_path(name), f"bank '{name}' holds {held.describe()} as '{output}' "
                                                          f"but nothing writes it: wire input '{port}'", key=True)

    def check_inferred(self, name: str, outputs: dict) -> bool:
        """``infer`` must give exactly the declared outputs, each a Value of the declared type."""
        cls = NODES.get(self.nodes[name].type)
        declared = {port.name: port.type for port in cls.outputs}
        given = {port: getattr(value, "type", None) for port, value in outputs.items()}
        if given == declared:
            return True
        problems = [f"misses output '{port}'" for port in declared if port not in given]
        problems += [f"gives undeclared output '{port}'" for port in given if port not in declared]
        problems += [f"gives output '{port}' as {given[port] or type(outputs[port]).__name__}, declared "
                     f"{declared[port]}" for port in declared if port in given and given[port] != declared[port]]
        self.error(self.spec.node_path(name), f"node '{name}' ({cls.type_name}, defined at {defined_at(cls)}): "
                                              f"infer {'; '.join(problems)}", key=True)
        return False

    def samples(self, order: list[str]) -> tuple[str, str] | None:
        ref = self.spec.train.samples
        if ref is None:
            kernels = self._energy_kernels(order)
            return (kernels[-1], "x") if kernels else None
        node, dot, port = ref.partition(".")
        if node not in self.nodes:
            self.error(("train", "samples"), f"unknown node '{node}'{did_you_mean(node, self.nodes)}")
            return None
        outputs = {p.name: p for p in NODES.get(self.nodes[node].type).outputs}
        port = port if dot else next(iter(outputs))
        if port not in outputs or outputs[port].type.kind != "sample":
            samples = [name for name, p in outputs.items() if p.type.kind == "sample"]
            self.error(("train", "samples"), f"node '{node}' has no Sample output '{port}'{did_you_mean(port, samples)}"
                                             f"; its Sample outputs: {one_of(samples) if samples else 'none'}")
            return None
        return node, port

    def _members(self, order: list[str], capability: type) -> list[str]:
        return [n for n in order if issubclass(NODES.get(self.nodes[n].type), capability)]

    def _energy_kernels(self, order: list[str]) -> list[str]:
        return [n for n in order if is_energy_kernel(NODES.get(self.nodes[n].type))]

    def check_eval(self, order: list[str]) -> None:
        spec = self.spec.eval
        kernels, banks = self._energy_kernels(order), self._members(order, Bank)
        if spec.kernel is not None and spec.kernel not in kernels:
            self.error(("eval", "kernel"), f"'{spec.kernel}' is not a kernel on an energy model"
                                           f"{did_you_mean(spec.kernel, kernels)}; such kernels: "
                                           f"{one_of(kernels) if kernels else 'none'}")
        if spec.source == "chains" and not kernels and spec.energy is None:
            self.error(("eval", "source"), "fresh evaluation chains need a kernel node; this graph has none")
        if spec.source == "bank" and (spec.bank not in banks if spec.bank is not None else not banks):
            self.error(("eval", "bank"), f"'{spec.bank}' is not a bank node{did_you_mean(spec.bank, banks)}; "
                                         f"banks: {one_of(banks) if banks else 'none'}")
        for key, role in (("generator", "generator"), ("amortizer", "amortizer")):
            name = getattr(spec, key)
            if spec.init == key and model_role(self.spec, name) != role:
                self.error(("eval", key), f"eval.init '{key}' needs eval.{key}, a{'n' * (role[0] in 'aeiou')} {role} "
                                          f"model; found {name!r}{did_you_mean(name or '', self.spec.models)}")
        if spec.decode is not None and model_role(self.spec, spec.decode) != "generator":
            self.error(("eval", "decode"), f"'{spec.decode}' is not a generator model"
                                           f"{did_you_mean(spec.decode, self.spec.models)}")
        if spec.decode is not None and spec.source == "bank":
            self.error(("eval", "decode"), "decodes chain latents; with source 'bank' there are no chains")
        augments = self._members(order, Augmentation)
        if spec.augment is not None and spec.augment not in augments:
            self.error(("eval", "augment"), f"'{spec.augment}' is not an augment node{did_you_mean(spec.augment, augments)}"
                                            f"; augment nodes: {one_of(augments) if augments else 'none'}")
        if spec.augment_every < 1:
            self.error(("eval", "augment_every"), f"must be >= 1, found {spec.augment_every}")
        representations = [m for m in self.spec.models if model_role(self.spec, m) == "representation"]
        needs_representation = spec.score == "joint" or any(m in CONDITIONAL_METRICS for m in spec.metrics or [])
        if (needs_representation or spec.representation is not None) and \
                model_role(self.spec, spec.representation) != "representation":
            self.error(("eval", "representation"), f"score 'joint' and the metrics {', '.join(CONDITIONAL_METRICS)} need "
                                                   f"eval.representation, a representation model (e.g. "
                                                   f"resnet_representation); found {spec.representation!r}"
                                                   f"{did_you_mean(spec.representation or '', representations)}")
        if spec.energy is not None and model_role(self.spec, spec.energy) != "energy":
            self.error(("eval", "energy"), f"'{spec.energy}' is not an energy model"
                                           f"{did_you_mean(spec.energy, self.spec.models)}")

    def build_data(self, device: torch.device) -> DataSource:
        """The data node, built once (its samples are read then; their shape sizes the models)."""
        try:
            return build_node("data", self.spec, {}, device)
        except DataError as error:
            self.error(("data",), str(error), key=True)
        self.raise_if_errors()

    def build_models(self, device: torch.device, shape: tuple[int, ...]) -> dict[str, torch.nn.Module]:
        try:
            return build_models(self.spec, device, shape)
        except ModelBuildError as error:
            data = self.spec.data.type
            self.error(("models", error.model), f"model '{error.model}' ({self.spec.models[error.model].type}) cannot "
                                                f"take the samples of node 'data' ({data}): {error.detail}", key=True)
        self.raise_if_errors()

    def build_nodes(self, order: list[str], models: dict, device: torch.device, data: DataSource) -> dict[str, Node]:
        built: dict[str, Node] = {"data": data}
        for name in order:
            if name in built:
                continue
            try:
                built[name] = build_node(name, self.spec, models, device)
            except DataError as error:
                self.error(self.spec.node_path(name), str(error), key=True)
        self.raise_if_errors()
        return built

    def run(self, device: torch.device) -> BuiltGraph:
        self.wire()
        self.check_models()
        self.check_optimizers()
        phases = self.check_phases()
        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from((e.source, e.target) for e in self.edges if not e.delay)
        order = self.order(graph)
        self.raise_if_errors()
        self.check_gradient_paths()
        self.raise_if_errors()
        data = self.build_data(device)
        models = self.build_models(device, data.sample_shape)
        built = self.build_nodes(order, models, device, data)
        values = self.propagate(order, built)
        samples = self.samples(order)
        self.check_eval(order)
        self.raise_if_errors()
        counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
        node_type = lambda name: NODES.get(self.nodes[name].type)  # noqa: E731
        plan = StepPlan(self.spec, graph, order, tuple(self.edges), values, counts,
                        schedule(self.spec, graph, tuple(order), phases, values, node_type), samples)
        return BuiltGraph(plan, models, built)


@attrs.frozen(eq=False)
class BuiltGraph:
    """A step plan with its models and nodes, each built once."""

    plan: StepPlan
    models: dict[str, torch.nn.Module]
    nodes: dict[str, Node]


def check_and_build(spec: GraphSpec, device: torch.device) -> BuiltGraph:
    """Check ``spec`` and build its models and nodes on ``device``; raises GraphError listing
    every problem found."""
    return _Checker(spec).run(device)


def check_graph(spec: GraphSpec) -> StepPlan:
    """The step plan of ``spec`` (models built on the meta device: no weights are allocated)."""
    return check_and_build(spec, torch.device("meta")).plan
