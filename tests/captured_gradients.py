"""Golden tests' view of a compiled step: each optimizer's gradients at the moment it would step."""

import torch


def captured_gradients(program) -> dict:
    """Replace each optimizer's step by a capture of its parameters' gradients (zeros where none);
    the dict fills in when the program steps. A repeated phase keeps its last repetition's
    gradients: with the steps switched off, every repetition sees the same parameters."""
    captured = {}
    for name, optimizer in program.updater.optimizers.items():
        def capture(name=name, params=program.updater.parameters[name]):
            captured[name] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        optimizer.step = capture
    return captured


def first_step(graph_file: str, overrides: tuple) -> tuple[dict, dict, torch.Tensor, object]:
    """Step 0 of a graph: (captured gradients, the models as they were before it, its data batch,
    a context reproducing its randomness) for a hand transcription to compare with."""
    import copy

    from ebmgraph.engine.context import StepContext
    from ebmgraph.engine.program import Program
    from ebmgraph.engine.load import load_graph

    spec = load_graph(graph_file, None, overrides)
    program = Program(spec)
    before = copy.deepcopy(program.models)
    captured = captured_gradients(program)
    program.step(0)
    ctx = StepContext(spec.seed, 0, torch.device("cpu"))
    return captured, before, program.nodes["data"](ctx)["x"], ctx


class _Recorder:
    """A node that also keeps its outputs in ``outputs[name]``."""

    def __init__(self, node, outputs):
        self.node, self.outputs = node, outputs

    def __call__(self, ctx, **inputs):
        self.outputs[self.node.name] = self.node(ctx, **inputs)
        return self.outputs[self.node.name]

    def __getattr__(self, attribute):
        return getattr(self.node, attribute)


def recorded_outputs(program, names) -> dict:
    """The outputs of nodes ``names`` at the program's next step (the dict fills in as it runs)."""
    outputs = {}
    for name in names:
        setattr(program._node_namespace, name, _Recorder(program.nodes[name], outputs))
    return outputs
