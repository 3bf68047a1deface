"""The Python API (ebmgraph.load, Graph, Run, open_run): the graph file mirrored in Python, every
change validated by the loader with the file format's messages, the builder, the exact YAML round
trip, and checking, compiling, drawing and running from Python."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ebmgraph
from ebmgraph.engine.check import check_graph
from ebmgraph.engine.codegen import generate
from ebmgraph.engine.describe import describe_plan
from ebmgraph.engine.load import load_graph, loads_graph
from ebmgraph.errors import GraphError
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.viz.drawing import text_tree
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent
GRAPH_FILES = sorted((ROOT / "graphs").glob("*.yaml"))
PROFILES = [(path, profile) for path in GRAPH_FILES
            for profile in (yaml.safe_load(path.read_text()).get("profiles") or [None])]
PAPER = [path for path, profile in PROFILES if profile == "paper"]
SHORT_RUN = ROOT / "graphs" / "short_run.yaml"
IGEBM = ROOT / "graphs" / "igebm.yaml"


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "profile"), PROFILES, ids=[f"{p.stem}-{profile}" for p, profile in PROFILES])
def test_yaml_to_python_to_yaml_is_exact(path, profile, tmp_path):
    graph = ebmgraph.load(path, profile)
    expected = load_graph(path, profile)
    assert graph.spec == expected and graph.profile == expected.profile
    text = graph.to_yaml(tmp_path / "dumped.yaml")
    again = ebmgraph.load(tmp_path / "dumped.yaml")
    assert again.spec == graph.spec
    assert again.to_yaml() == text
    graph.seed = graph.seed + 1  # a change resolves the graph's raw mapping again
    graph.seed = expected.seed
    assert graph.spec == expected and graph.profile == expected.profile and graph.to_yaml() == text


def test_a_change_after_a_profile_keeps_the_profile_and_the_overrides():
    graph = ebmgraph.load(SHORT_RUN, "toy2d", ["train.steps=7"])
    graph.nodes["negatives"].steps = 5
    assert graph.train.steps == 7  # the toy2d profile sets 2000: it is not applied again
    assert graph.profile == "toy2d"
    assert graph.spec == load_graph(SHORT_RUN, "toy2d", ("train.steps=7", "nodes.negatives.steps=5"))


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_profiles_load_and_dump_without_cifar_and_need_it_to_check(path, tmp_path):
    graph = ebmgraph.load(path, "paper", [f"data.root={tmp_path / 'missing'}"])
    assert loads_graph(graph.to_yaml()) == graph.spec
    with pytest.raises(GraphError, match="CIFAR-10 folder .* not found"):
        graph.check()


def test_a_paper_profile_checks_with_a_cifar_folder(tmp_path, write_cifar):
    write_cifar(tmp_path / "cifar", per_batch=32)
    graph = ebmgraph.load(SHORT_RUN, "paper")
    graph.data.root = str(tmp_path / "cifar")
    assert "data (cifar10) -> x: Sample of shape (100, 3, 32, 32)" in graph.describe()


# --- reading --------------------------------------------------------------------------------------

def test_reading_gives_the_resolved_values_defaults_included():
    graph = ebmgraph.load(IGEBM)
    assert (graph.name, graph.seed, graph.paper.startswith("Du, Mordatch")) == ("igebm", 0, True)
    assert (graph.data.type, graph.data.batch_size) == ("digits", 64)
    assert graph.models["energy"].channels == 16 and graph.models["energy"].spectral_norm is True
    assert graph.nodes["negatives"].init == "bank" and graph.nodes["negatives"].steps == 30
    assert graph.nodes["negatives"].clamp == [-1.0, 1.0]
    assert graph.nodes["negatives"].temperature == 1.0  # a default the file does not write
    assert graph.losses["regularizer"].alpha == 1.0
    assert graph.optimizers["energy_optimizer"].losses == ["cd", "regularizer"]
    assert graph.optimizers["energy_optimizer"].betas == [0.0, 0.999]
    assert (graph.train.steps, graph.eval.source, graph.eval.n, graph.schedule.phases) == (1500, "bank", 500, [])
    assert list(graph.nodes) == ["bank", "negatives", "positive_energy", "negative_energy"]
    assert "bank" in graph.nodes and "bnak" not in graph.nodes and len(graph.losses) == 2
    assert graph.get("nodes.bank.capacity") == 10000
    assert graph.to_dict()["nodes"]["bank"]["write"] == "reservoir"


def test_reading_an_unknown_key_or_entry_suggests_the_closest():
    graph = ebmgraph.load(SHORT_RUN)
    with pytest.raises(AttributeError, match=r"nodes.negatives has no key 'stepz' \(did you mean 'steps'\?\)"):
        graph.nodes["negatives"].stepz
    with pytest.raises(KeyError, match=r"nodes: unknown node 'negativs' \(did you mean 'negatives'\?\)"):
        graph.nodes["negativs"]
    with pytest.raises(KeyError, match=r"train has no key 'stpes' \(did you mean 'steps'\?\)"):
        graph.get("train.stpes")
    assert not hasattr(graph.eval, "kernal")


# --- changing -------------------------------------------------------------------------------------

CHANGES = [  # key, a Python value, the same value as --set text
    ("nodes.negatives.steps", 20, "20"),
    ("nodes.negatives.clamp", [-2, 2], "[-2, 2]"),
    ("optimizers.energy_optimizer.betas", (0.5, 0.9), "[0.5, 0.9]"),
    ("models.energy", {"type": "mlp_energy", "hidden": 32}, "{type: mlp_energy, hidden: 32}"),
    ("nodes.noise", {"low": -2.0}, "{low: -2.0}"),
    ("nodes.extra_noise", {"type": "uniform_noise", "like": "data"}, "{type: uniform_noise, like: data}"),
    ("nodes.positive_energy", None, "null"),
    ("eval.metrics", ["fd"], "[fd]"),
    ("train.samples", "noise.x", "noise.x"),
]


@pytest.mark.parametrize(("key", "value", "text"), CHANGES, ids=[key for key, _, _ in CHANGES])
def test_a_change_in_python_is_the_same_as_set(key, value, text):
    graph = ebmgraph.load(SHORT_RUN)
    graph.set(key, value)
    assert graph.spec == load_graph(SHORT_RUN, None, (f"{key}={text}",))


def test_attribute_assignment_changes_the_graph():
    graph = ebmgraph.load(SHORT_RUN)
    graph.nodes["negatives"].steps = 20
    graph.models["energy"].channels = 8
    graph.data.batch_size = 32
    graph.train.steps = 9
    graph.seed = 3
    assert graph.spec == load_graph(SHORT_RUN, None, ("nodes.negatives.steps=20", "models.energy.channels=8",
                                                      "data.batch_size=32", "train.steps=9", "seed=3"))
    assert graph.spec.nodes["negatives"].config.steps == 20


BAD = [  # key, a Python value, the same value as --set text
    ("train.steps", "abc", "abc"),
    ("nodes.negatives.stepz", 3, "3"),
    ("nodes.negativs.steps", 3, "3"),
    ("nodes.negatives.epsilon", 0.1, "0.1"),
    ("nodes.negatives.clamp", [1, 0], "[1, 0]"),
    ("eval.init", "normal", "normal"),
    ("optimizers.energy_optimizer.type", "adamm", "adamm"),
    ("models.energy", {"type": "conv_energi"}, "{type: conv_energi}"),
]


@pytest.mark.parametrize(("key", "value", "text"), BAD, ids=[key for key, _, _ in BAD])
def test_a_bad_change_is_refused_as_set_refuses_it_and_changes_nothing(key, value, text):
    graph = ebmgraph.load(SHORT_RUN)
    before = graph.spec
    with pytest.raises(GraphError) as python:
        graph.set(key, value)
    with pytest.raises(GraphError) as command_line:
        load_graph(SHORT_RUN, None, (f"{key}={text}",))
    assert ([(d.path, d.message) for d in python.value.diagnostics]
            == [(d.path, d.message) for d in command_line.value.diagnostics])
    assert {d.file for d in python.value.diagnostics} == {f"set {key}={value!r}"}
    assert graph.spec is before


def test_assignment_errors_name_the_key_and_what_was_expected():
    graph = ebmgraph.load(SHORT_RUN)
    with pytest.raises(GraphError) as error:
        graph.nodes["negatives"].steps = "many"
    assert str(error.value) == ("set nodes.negatives.steps='many': nodes.negatives.steps: expected an integer, "
                                "found 'many' (a string)")
    with pytest.raises(GraphError, match=r"unknown key 'step_sise' for node type 'langevin' "
                                         r"\(did you mean 'step_size'\?\)"):
        graph.nodes["negatives"].step_sise = 0.5
    with pytest.raises(GraphError, match=r"unknown node 'negativs' \(did you mean 'negatives'\?\)"):
        graph.set("nodes.negativs.steps", 3)
    assert graph.nodes["negatives"].steps == 40


def test_check_errors_point_at_the_change_that_made_them():
    graph = ebmgraph.load(SHORT_RUN)
    graph.nodes["negative_energy"].x = "negativs"  # a reference: checked by check(), not by the loader
    with pytest.raises(GraphError) as error:
        graph.check()
    [diagnostic] = error.value.diagnostics
    assert (diagnostic.file, diagnostic.path) == ("set nodes.negative_energy.x='negativs'", "nodes.negative_energy.x")
    assert "refers to unknown node 'negativs' (did you mean 'negatives'?)" in diagnostic.message


def test_update_changes_keys_that_must_change_together():
    graph = ebmgraph.load(SHORT_RUN)
    with pytest.raises(GraphError, match="give exactly one Langevin parameterization"):
        graph.nodes["negatives"].epsilon = 0.1
    graph.update({"nodes.negatives.step_size": None, "nodes.negatives.noise": None, "nodes.negatives.epsilon": 0.1})
    assert graph.spec == load_graph(SHORT_RUN, None, ("nodes.negatives.step_size=null", "nodes.negatives.noise=null",
                                                      "nodes.negatives.epsilon=0.1"))


def test_plugins_set_in_python_are_imported_at_once(tmp_path):
    graph = ebmgraph.load(SHORT_RUN)
    missing = str(tmp_path / "missing_plugin.py")
    with pytest.raises(GraphError, match="missing_plugin.py") as error:
        graph.plugins = [missing]
    assert [d.path for d in error.value.diagnostics] == ["plugins[0]"]
    assert all(d.file.startswith("set plugins=['") for d in error.value.diagnostics)  # the change, shortened
    assert graph.plugins == []


def test_entries_are_replaced_whole_and_removed():
    graph, merged = ebmgraph.load(IGEBM), ebmgraph.load(IGEBM)
    graph.models["energy"] = {"type": "conv_energy", "channels": 4}
    merged.set("models.energy", {"type": "conv_energy", "channels": 4})
    assert graph.spec.models["energy"].config == MODELS.get("conv_energy").Config(channels=4)
    assert merged.models["energy"].spectral_norm is True  # set merges a mapping of the same type
    graph.nodes["negatives"] = {"type": "langevin", "energy": "energy", "init": "bank", "steps": 3, "epsilon": 0.1}
    assert list(graph.nodes) == ["bank", "negatives", "positive_energy", "negative_energy"]  # in place
    assert (graph.nodes["negatives"].clamp, graph.nodes["negatives"].step_size) == (None, None)  # not merged
    del graph.nodes["bank"]
    assert "bank" not in graph.nodes
    with pytest.raises(GraphError, match="refers to unknown node 'bank'"):
        graph.check()
    with pytest.raises(KeyError, match=r"did you mean 'negatives'"):
        del graph.nodes["negativs"]


# --- the builder ----------------------------------------------------------------------------------

def _toy_bank_graph() -> ebmgraph.Graph:
    graph = ebmgraph.Graph.new("toy_bank", seed=3, data={"type": "eight_gaussians", "batch_size": 32})
    graph.add_model("energy", "mlp_energy", hidden=16, layers=2)
    graph.add_model("energy_ema", "ema", of="energy", decay=0.9)
    graph.add_node("bank", "replay_bank", like="data", store="negatives", capacity=64, init_low=-4.0, init_high=4.0)
    graph.add_node("negatives", "langevin", energy="energy", init="bank", steps=5, step_size=0.05, noise=0.1)
    graph.add_node("positive_energy", "evaluate_energy", energy="energy", x="data")
    graph.add_node("negative_energy", "evaluate_energy", energy="energy", x="negatives")
    graph.add_loss("cd", "contrastive_divergence", positive="positive_energy", negative="negative_energy")
    graph.add_optimizer("energy_optimizer", "adam", models=["energy"], losses=["cd"], lr=1e-3)
    graph.add_phase("energy_optimizer", repeat=2)
    graph.train.steps = 10
    return graph


def test_a_built_graph_dumps_to_yaml_that_loads_to_the_same_graph(tmp_path):
    graph = _toy_bank_graph()
    text = graph.to_yaml(tmp_path / "toy_bank.yaml")
    assert loads_graph(text) == graph.spec
    assert ebmgraph.load(tmp_path / "toy_bank.yaml").to_yaml() == text
    written = yaml.safe_load(text)
    assert written["schedule"] == {"phases": [{"optimizers": ["energy_optimizer"], "repeat": 2}]}
    assert written["nodes"]["bank"]["store"] == "negatives" and written["models"]["energy_ema"]["of"] == "energy"
    assert "for ctx.repeat in range(2):" in graph.compile()


def test_each_addition_is_validated_at_once():
    graph = ebmgraph.Graph.new("g", data={"type": "digits"})
    with pytest.raises(GraphError) as error:
        graph.add_model("energy", "conv_energy", channels="many")
    assert str(error.value) == ("add_model('energy', 'conv_energy'): models.energy.channels: expected an integer, "
                                "found 'many' (a string)")
    assert "energy" not in graph.models
    with pytest.raises(GraphError, match=r"nodes.negatives.type: unknown node type 'langevn' "
                                         r"\(did you mean 'langevin'\?\)"):
        graph.add_node("negatives", "langevn")
    with pytest.raises(GraphError, match=r"unknown key 'stepz' for node type 'langevin' \(did you mean 'steps'\?\)"):
        graph.add_node("negatives", "langevin", energy="energy", init="data", stepz=3, epsilon=0.1)
    graph.add_model("energy", "conv_energy")
    with pytest.raises(GraphError, match="model 'energy' already exists"):
        graph.add_model("energy", "conv_energy")
    with pytest.raises(GraphError, match="invalid name 'ctx'"):
        graph.add_node("ctx", "uniform_noise", like="data")
    with pytest.raises(GraphError, match=r"add_optimizer\('opt', 'adam'\): optimizers.opt: expected a non-empty "
                                         r"list of model names for key 'models', found nothing"):
        graph.add_optimizer("opt", "adam", losses=["cd"])
    with pytest.raises(GraphError, match=r"Graph.new\('g'\): data.type: unknown node type 'digitz'"):
        ebmgraph.Graph.new("g", data={"type": "digitz"})
    assert list(graph.models) == ["energy"] and not graph.nodes and not graph.optimizers


# --- using a graph --------------------------------------------------------------------------------

def test_check_compile_and_draw_give_what_the_commands_print(tmp_path):
    graph = ebmgraph.load(SHORT_RUN)
    plan = check_graph(load_graph(SHORT_RUN))
    assert graph.check().order == plan.order
    assert graph.describe() == describe_plan(plan)
    assert graph.compile() == generate(plan).text
    assert graph.draw() == text_tree(plan)
    assert "Mermaid" in graph.draw(tmp_path / "short_run.mmd")
    assert (tmp_path / "short_run.mmd").read_text().startswith("flowchart")
    with pytest.raises(ValueError, match=r"use \.svg, \.png"):
        graph.draw(tmp_path / "short_run.jpg")


def test_run_evaluate_sample_and_resume(tmp_path):
    graph = ebmgraph.load(SHORT_RUN, overrides=FAST)
    run = graph.run(tmp_path / "run", steps=2)
    assert graph.train.steps == 4  # run(steps=...) leaves the graph as it is
    assert ebmgraph.load(run.graph_file).spec == load_graph(SHORT_RUN, None, FAST + ("train.steps=2",))
    assert [record["step"] for record in run.metrics] == [1, 2]
    assert all(math.isfinite(record["loss/cd"]) for record in run.metrics)
    assert run.evaluation["step"] == 2  # the run evaluates at its end
    record = run.evaluate(n=16)
    assert record["step"] == 2 and record["metrics"]["n"] == 16 and run.evaluation == record
    [picture] = run.sample(n=8, steps=2)
    assert picture == tmp_path / "run" / "samples" / "fresh_2steps.png" and picture.stat().st_size > 0
    opened = ebmgraph.open_run(tmp_path / "run")
    assert opened.metrics == run.metrics
    opened.resume(steps=3)
    assert [record["step"] for record in opened.metrics] == [1, 2, 3]
    assert opened.checkpoints() == [2, 3]
    opened.resume(steps=4, from_step=2)
    assert [record["step"] for record in opened.metrics] == [1, 2, 3, 4] and opened.checkpoints() == [2, 4]
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        ebmgraph.open_run(tmp_path)


# --- the package's face ---------------------------------------------------------------------------

def test_import_ebmgraph_is_light_and_exports_the_api():
    code = "import sys, ebmgraph; print('torch' in sys.modules, ebmgraph.__version__)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert output.stdout.split()[0] == "False"
    assert set(ebmgraph.__all__) == {"Graph", "Run", "__version__", "load", "open_run"}
    assert all(getattr(ebmgraph, name) for name in ebmgraph.__all__)
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        ebmgraph.lod


def test_the_python_api_page_documents_every_public_name():
    text = (ROOT / "docs" / "python-api.md").read_text()
    public = [f"graph.{name}" for name in vars(ebmgraph.Graph) if not name.startswith("_") and name != "new"]
    public += [f"run.{name}" for name in vars(ebmgraph.Run) if not name.startswith("_")]
    public += ["ebmgraph.load(", "ebmgraph.open_run(", "Graph.new("]
    assert [name for name in public if name not in text] == []
