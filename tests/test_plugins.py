"""Plugins: a user's loss and kernel on the public bases, named under `plugins:`, work through every
command with the plain CLI; contract breaches and failures are located errors naming the plugin."""

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.load import load_graph, loads_graph
from ebmgraph.errors import GraphError, NodeError
from ebmgraph.nodes.catalog import MODELS, NODES, OPTIMIZERS
from ebmgraph.nodes.node import contract_problems
from tests.checkpoint_files import final_state
from tests.conftest import FAST

PLUGIN = '''
"""A user's nodes: a margin loss and a tempered Langevin kernel, on ebmgraph's public bases."""
import attrs
import torch

from ebmgraph import nodes


@attrs.define
class MarginConfig:
    margin: float = 1.0


@nodes.register
class MarginLoss(nodes.LossNode):
    """max(0, margin + mean E+ - mean E-)."""

    type_name = "plugin_margin_loss"
    Config = MarginConfig
    inputs = (nodes.Port("positive", nodes.ENERGY), nodes.Port("negative", nodes.ENERGY))
    outputs = (nodes.Port("loss", nodes.LOSS),)

    def infer(self, inputs):
        return {"loss": nodes.Value(nodes.LOSS, ())}

    def __call__(self, ctx, positive, negative):
        if not torch.isfinite(positive).all():
            raise ValueError("non-finite positive energies")  # the line a runtime error must name
        return {"loss": torch.relu(self.config.margin + positive.mean() - negative.mean())}


@nodes.register
class TemperedLangevin(nodes.EnergyKernel):
    """Langevin on E(x) / 2."""

    type_name = "plugin_tempered_langevin"

    @classmethod
    def sampled_energy(cls, energy):
        return lambda x: energy(x) / 2

    def __call__(self, ctx, init):
        return {"x": self.sample_chain(ctx, self.sampled_energy(self.models["energy"]), init).position}
'''

GRAPH = '''
name: plugged
seed: 3
plugins: [my_nodes.py]
data: {type: digits, batch_size: 16}
models:
  energy: {type: conv_energy, channels: 8, stages: 2}
nodes:
  noise: {type: uniform_noise, like: data}
  negatives: {type: plugin_tempered_langevin, energy: energy, init: noise, steps: 3, step_size: 1.0, noise: 0.01}
  positive_energy: {type: evaluate_energy, energy: energy, x: data}
  negative_energy: {type: evaluate_energy, energy: energy, x: negatives}
losses:
  margin: {type: plugin_margin_loss, positive: positive_energy, negative: negative_energy, margin: 0.5}
optimizers:
  opt: {type: adam, models: [energy], losses: [margin], lr: 0.001}
train: {steps: 4, log_every: 1, sample_every: 2, checkpoint_every: 2, progress: false}
eval: {n: 16, steps: 2, metrics: [modes]}
'''


@pytest.fixture(scope="module")
def plugged(tmp_path_factory):
    """A folder with the plugin and a graph naming it (imported once per test process)."""
    folder = tmp_path_factory.mktemp("plugged")
    (folder / "my_nodes.py").write_text(PLUGIN)
    (folder / "graph.yaml").write_text(GRAPH)
    return folder


def _plugin_file(folder: Path) -> str:
    return str((folder / "my_nodes.py").resolve())


def _states(run: Path) -> dict:
    return final_state(run)["models"]["energy"]


def test_a_plugin_works_through_every_command(plugged, tmp_path, capsys):
    graph = str(plugged / "graph.yaml")
    assert main(["check", graph]) == 0
    assert "negatives (plugin_tempered_langevin)" in capsys.readouterr().out
    assert main(["draw", graph, "-o", str(tmp_path / "graph.mmd")]) == 0
    assert "plugin_margin_loss" in (tmp_path / "graph.mmd").read_text()

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["run", graph, "--out", str(straight)]) == 0
    assert main(["run", graph, "--out", str(resumed), "--steps", "2"]) == 0
    assert main(["run", "--resume", str(resumed), "--steps", "4"]) == 0
    for name, value in _states(straight).items():
        assert torch.equal(value, _states(resumed)[name]), name
    assert load_graph(resumed / "graph.yaml").plugins == [_plugin_file(plugged)]

    # a fresh process knows nothing of the plugin: the run directory names it
    for command in (["sample", str(resumed), "--n", "4", "--steps", "2"], ["eval", str(resumed), "--n", "8"]):
        done = subprocess.run([sys.executable, "-m", "ebmgraph.cli", *command], capture_output=True, text=True,
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert "class_entropy" in json.loads((resumed / "eval.json").read_text())["metrics"]
    assert main(["report", str(resumed)]) == 0
    assert (resumed / "report.html").stat().st_size > 0


def test_the_command_line_adds_plugins_and_the_run_records_them(plugged, tmp_path):
    text = (plugged / "graph.yaml").read_text().replace("plugins: [my_nodes.py]\n", "")
    (tmp_path / "bare.yaml").write_text(text)
    out = tmp_path / "run"
    assert main(["--plugin", _plugin_file(plugged), "run", str(tmp_path / "bare.yaml"), "--out", str(out),
                 "--steps", "1"]) == 0
    assert load_graph(out / "graph.yaml").plugins == [_plugin_file(plugged)]


def test_a_runtime_error_in_a_plugin_node_names_the_plugin_line(plugged):
    from ebmgraph.engine.program import Program

    spec = load_graph(plugged / "graph.yaml", overrides=("models.energy.channels=8",))
    program = Program(spec)
    with torch.no_grad():
        next(program.models["energy"].parameters()).fill_(float("nan"))
    with pytest.raises(NodeError) as error:
        program.step(0)
    line = next(i for i, text in enumerate(PLUGIN.splitlines(), 1) if "the line a runtime error must name" in text)
    assert f"(at {_plugin_file(plugged)}:{line}, in __call__)" in str(error.value)
    assert "node 'margin' (plugin_margin_loss)" in str(error.value)


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def _graph_with(plugin: Path, node: str = "") -> str:
    return (f"name: probe\nplugins: [{plugin}]\ndata: {{type: eight_gaussians, batch_size: 8}}\n"
            "models: {energy: {type: mlp_energy, hidden: 8, layers: 2}}\n"
            f"nodes: {{noise: {{type: uniform_noise, like: data}}{node}}}\n"
            "losses: {cd: {type: contrastive_divergence, positive: p, negative: n}}\n"
            "optimizers: {opt: {type: adam, models: [energy], losses: [cd]}}\n").replace(
        "nodes: {", "nodes: {p: {type: evaluate_energy, energy: energy, x: data}, "
                    "n: {type: evaluate_energy, energy: energy, x: noise}, ")


def test_call_keywords_that_differ_from_the_ports_name_the_plugin_file(tmp_path):
    plugin = _write(tmp_path, "bad_call.py", '''
        from ebmgraph import nodes

        @nodes.register
        class Shift(nodes.ModelCall):
            type_name = "plugin_bad_call"
            inputs = (nodes.Port("x", nodes.SAMPLE),)
            outputs = (nodes.Port("x", nodes.SAMPLE),)

            def infer(self, inputs):
                return {"x": inputs["x"]}

            def __call__(self, ctx, samples):
                return {"x": samples}
        ''')
    with pytest.raises(GraphError) as error:
        loads_graph(_graph_with(plugin), "probe.yaml")
    text = str(error.value)
    assert "probe.yaml:2:" in text and "plugins[0]" in text and f"{plugin}:4)" in text  # where it registers
    assert "__call__(self, ctx, samples) must take exactly its tensor input ports as keywords: x" in text


def test_an_infer_that_misses_an_output_is_a_check_error_naming_node_and_file(tmp_path):
    plugin = _write(tmp_path, "bad_infer.py", '''
        from ebmgraph import nodes

        @nodes.register
        class Split(nodes.ModelCall):
            type_name = "plugin_bad_infer"
            inputs = (nodes.Port("x", nodes.SAMPLE),)
            outputs = (nodes.Port("x", nodes.SAMPLE), nodes.Port("rest", nodes.SAMPLE))

            def infer(self, inputs):
                return {"x": inputs["x"]}

            def __call__(self, ctx, x):
                return {"x": x, "rest": x}
        ''')
    spec = loads_graph(_graph_with(plugin, ", split: {type: plugin_bad_infer, x: data}"), "probe.yaml")
    with pytest.raises(GraphError) as error:
        check_graph(spec)
    assert f"node 'split' (plugin_bad_infer, defined at {plugin}:4): infer misses output 'rest'" in str(error.value)


def test_a_plugin_that_fails_or_registers_nothing_is_a_located_error(tmp_path):
    empty = _write(tmp_path, "empty.py", "VALUE = 1\n")
    broken = _write(tmp_path, "broken.py", "import math\n\nmath.sqrt(-1)\n")
    for plugin, message in ((empty, "registered no node, model or optimizer type"),
                            (broken, f"failed to import: ValueError: math domain error ({broken}:3)"),
                            (tmp_path / "missing.py", "not found")):
        with pytest.raises(GraphError, match="plugins") as error:
            loads_graph(_graph_with(plugin), "probe.yaml")
        assert message in str(error.value)


def test_a_loss_without_a_gradient_path_to_its_optimizer_is_located():
    text = open("graphs/dual_mcmc.yaml").read()
    spec_text = text.replace("losses: [generator_on_data, generator_on_samples]", "losses: [ebm, generator_on_data, generator_on_samples]", 1)
    assert spec_text != text
    with pytest.raises(GraphError) as error:
        check_graph(loads_graph(spec_text, "dual.yaml", None, FAST[:5]))
    assert str(error.value).count("no gradient path") == 1
    assert "loss 'ebm' has no gradient path to the models of optimizer 'generator_optimizer' (generator)" in str(
        error.value)


def test_every_module_that_registers_types_is_in_the_catalog():
    """A new module under ebmgraph/nodes cannot silently fail to register: every class it decorates
    with a registry's ``register`` is in that registry once the catalog is imported."""
    tables = {"NODES": NODES, "MODELS": MODELS, "OPTIMIZERS": OPTIMIZERS, "register": None}
    for path in sorted(Path("ebmgraph/nodes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                owner = getattr(decorator, "value", decorator)
                if getattr(owner, "id", None) in tables:
                    module = ".".join(path.with_suffix("").parts)
                    cls = getattr(__import__(module, fromlist=[node.name]), node.name)
                    registered = [t for t in (NODES, MODELS, OPTIMIZERS) if t.get(cls.type_name) is cls]
                    assert registered, f"{path}: {node.name} is not registered (is its module in nodes/catalog.py?)"


def test_the_contract_holds_for_every_registered_type_plugins_included(plugged):
    load_graph(plugged / "graph.yaml")  # imports the plugin
    assert NODES.get("plugin_margin_loss") is not None
    assert {cls.type_name: contract_problems(cls) for cls in NODES} == {cls.type_name: [] for cls in NODES}


def test_debug_prints_the_full_traceback(capsys):
    assert main(["check", "tests/broken_graphs/unknown_node_type.yaml"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "check", "tests/broken_graphs/unknown_node_type.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "unknown node type 'langevn'" in err
