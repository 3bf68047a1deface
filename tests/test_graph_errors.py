"""Broken graph files and the exact error text a user sees for each.

Every file in tests/broken_graphs/ is a small variation of one valid graph (digits data, a
conv_energy, uniform noise, a Langevin kernel, two energy evaluations, contrastive divergence and
Adam). Each case loads the file as ``load_graph`` does for ``ebmgraph check``, checks it, and
compares ``str(GraphError)`` with the full expected text: file, line, column, dotted path, message.

"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

from ebmgraph.cli import main
from ebmgraph.engine.check import check_graph
from ebmgraph.errors import GraphError
from ebmgraph.engine.load import load_graph
from ebmgraph.nodes.catalog import MODELS, NODES
from ebmgraph.spec.schema import TrainSpec
from ebmgraph.spec.suggest import one_of

DIR = os.path.relpath(Path(__file__).parent / "broken_graphs")

LANGEVIN_KEYS = ("'clamp', 'clip_grad_norm', 'clip_grad_value', 'compile', 'differentiable', 'energy', 'epsilon', 'eta', "
                 "'init', 'noise', 'step_size', 'steps', 'temperature', 'type'")
SECTIONS = ("'data', 'eval', 'losses', 'models', 'name', 'nodes', 'optimizers', 'paper', 'plugins', 'profiles', 'schedule', "
            "'seed', 'train'")
TRAIN_KEYS = one_of(f.name for f in attrs.fields(TrainSpec))


@attrs.frozen
class Case:
    id: str
    path: str
    expected: str
    profile: str | None = None
    overrides: tuple[str, ...] = ()


def case(file: str, *lines: str, profile: str | None = None, overrides: tuple[str, ...] = ()) -> Case:
    """A case for ``DIR/file``; each expected line is appended to that path (``":11:12: ..."``),
    except lines that name a ``--set`` override instead of the file."""
    path = f"{DIR}/{file}"
    expected = "\n".join(line if line.startswith("--set ") else path + line for line in lines)
    name = file.removesuffix(".yaml")
    if profile is not None or overrides:
        name += "-" + "-".join(filter(None, [profile, *overrides]))
    return Case(name, path, expected, profile, overrides)


CASES = [
    # --- loading: YAML, sections, keys, types and values ---
    case("invalid_yaml.yaml",
         ":9:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
         "(while parsing a block mapping that starts at line 6, column 3)"),
    case("unclosed_brace.yaml",
         ":9:18: invalid YAML: expected ',' or '}', but got ':' "
         "(while parsing a flow mapping that starts at line 8, column 20)"),
    case("duplicate_key.yaml",
         ":7:3: nodes.noise: duplicate key 'noise'"),
    case("missing_section.yaml",
         ":1:1: name: missing required section"),
    case("unknown_section.yaml",
         f":20:1: trian: unknown section 'trian' (did you mean 'train'?); expected one of {SECTIONS}"),
    case("wrong_type_int.yaml",
         ":11:12: nodes.negatives.steps: expected an integer, found 'many' (a string)"),
    case("unknown_node_key.yaml",
         ":11:5: nodes.negatives.stpes: unknown key 'stpes' for node type 'langevin' (did you mean 'steps'?); "
         f"expected one of {LANGEVIN_KEYS}"),
    case("unknown_node_type.yaml",
         ":8:11: nodes.negatives.type: unknown node type 'langevn' (did you mean 'langevin'?); "
         "node types: <NODE TYPES> (plugins add more)"),
    case("unknown_model_type.yaml",
         ":4:18: models.energy.type: unknown model type 'conv_enrgy' (did you mean 'conv_energy'?); "
         "model types: <MODEL TYPES> (plugins add more)"),
    case("bank_write_choice.yaml",
         ":6:81: nodes.bank.write: expected one of 'back', 'fifo', 'reservoir', found 'fif' (a string) "
         "(did you mean 'fifo'?)"),
    case("reinit_out_of_range.yaml",
         ":6:82: nodes.bank.reinit: must be a probability in [0, 1], found 1.5"),
    case("clamp_length.yaml",
         ":7:106: nodes.negatives.clamp: expected a list of 2 values, found a list of 1"),
    case("two_parameterizations.yaml",
         ":14:14: nodes.negatives.epsilon: give exactly one Langevin parameterization (step_size with noise, "
         "epsilon, or eta), found step_size/noise and epsilon"),
    case("step_size_without_noise.yaml",
         ":7:3: nodes.negatives.noise: step_size and noise go together: 'noise' is missing"),
    case("several_errors.yaml",
         ":2:7: seed: expected an integer, found 'zero' (a string)",
         ":7:44: nodes.noise.hihg: unknown key 'hihg' for node type 'uniform_noise' (did you mean 'high'?); "
         "expected one of 'batch_size', 'high', 'like', 'low', 'type'",
         ":12:12: nodes.negatives.steps: must be >= 0, found -1",
         ":20:58: optimizers.adam.lr: expected a number, found 'fast' (a string)"),

    # --- profiles and --set overrides (on a valid file) ---
    case("with_profiles.yaml",
         ": profiles: unknown profile 'paperr' (did you mean 'paper'?); this graph has: 'default', 'paper'",
         profile="paperr"),
    case("with_profiles.yaml",
         "--set train.stepz=5: train.stepz: unknown key 'stepz' (did you mean 'steps'?); "
         f"expected one of {TRAIN_KEYS}",
         overrides=("train.stepz=5",)),
    case("with_profiles.yaml",
         "--set nodes.negatives.stepz=5: nodes.negatives.stepz: unknown key 'stepz' for node type 'langevin' "
         f"(did you mean 'steps'?); expected one of {LANGEVIN_KEYS}",
         overrides=("nodes.negatives.stepz=5",)),
    case("with_profiles.yaml",
         "--set train.steps: expected KEY=VALUE, e.g. train.steps=100",
         overrides=("train.steps",)),
    case("with_profiles.yaml",
         "--set nodes.negativs.steps=5: nodes.negativs: unknown node 'negativs' (did you mean 'negatives'?); "
         "a new node needs a mapping with a 'type'",
         overrides=("nodes.negativs.steps=5",)),

    # --- checking: references, port types, cycles, bindings ---
    case("unknown_node_ref.yaml",
         ":10:11: nodes.negatives.init: input 'init' of node 'negatives' refers to unknown node 'noize' "
         "(did you mean 'noise'?)"),
    case("bad_output_port.yaml",
         ":10:11: nodes.negatives.init: node 'noise' (uniform_noise) has no output port 'xx' "
         "(did you mean 'x'?); its outputs: 'x'"),
    case("missing_model.yaml",
         ":9:13: nodes.negatives.energy: input 'energy' of node 'negatives' needs a model (Model[energy]); "
         "unknown model 'enrgy' (did you mean 'energy'?); models: 'energy'"),
    case("model_as_sample.yaml",
         ":6:53: nodes.negatives.init: type mismatch: 'energy' is a model (Model[energy]) but node 'negatives' "
         "input 'init' expects Sample"),
    case("missing_input_port.yaml",
         ":15:3: nodes.negative_energy: missing input 'x' (Sample) of node 'negative_energy' (evaluate_energy)"),
    case("type_mismatch.yaml",
         ":15:63: nodes.negative_energy.x: type mismatch: node 'positive_energy' output 'energy' is Energy "
         "but node 'negative_energy' input 'x' expects Sample"),
    case("cycle.yaml",
         ":6:10: nodes.first: cycle: first -> second -> first (only a bank's 'store' input may close a loop)"),
    case("unbound_loss.yaml",
         ":18:3: losses.regularizer: loss 'regularizer' is bound to no optimizer; add it to an optimizer's "
         "'losses' list"),
    case("unknown_loss.yaml",
         ":19:53: optimizers.adam.losses[1]: optimizer 'adam' uses unknown loss 'cdd' (did you mean 'cd'?)"),
    case("eval_not_kernel.yaml",
         ":14:16: eval.kernel: 'negativs' is not a kernel on an energy model (did you mean 'negatives'?); such kernels: 'negatives'"),
    case("several_check_errors.yaml",
         ":7:39: nodes.negatives.energy: input 'energy' of node 'negatives' needs a model (Model[energy]); "
         "unknown model 'enrgy' (did you mean 'energy'?); models: 'energy'",
         ":7:52: nodes.negatives.init: input 'init' of node 'negatives' refers to unknown node 'noize' "
         "(did you mean 'noise'?)",
         ":12:3: losses.regularizer: loss 'regularizer' is bound to no optimizer; add it to an optimizer's "
         "'losses' list"),

    # --- checking: shapes ---
    case("shape_mismatch_port.yaml",
         ":9:63: nodes.positive_energy.x: shape mismatch: node 'points' gives Sample of shape (16, 2) to input "
         "'x' of node 'positive_energy': model bound to 'energy' cannot take shape (16, 2): expected samples "
         "of shape (B, 1, 8, 8), found (16, 2)"),
    case("bank_shape_mismatch.yaml",
         ":7:48: nodes.bank.store: shape mismatch: node 'points' writes Sample of shape (16, 2) into bank "
         "'bank', which holds Sample of shape (16, 1, 8, 8) as 'x'"),
    case("shape_mismatch.yaml",
         ":4:3: models.energy: model 'energy' (conv_energy) cannot take the samples of node 'data' "
         "(eight_gaussians): conv_energy needs (C, H, W) images, found sample shape (2,)"),
    case("model_too_small.yaml",
         ":4:3: models.energy: model 'energy' (conv_energy) cannot take the samples of node 'data' "
         "(digits): images of size (8, 8) are too small for 4 2x downsampling stages"),
    case("batch_larger_than_data.yaml",
         ":2:1: data: the digits data set has 1437 training samples, fewer than batch_size 2000"),
]


def _params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.id) for c in cases]


@pytest.mark.parametrize("c", _params(CASES))
def test_broken_graph_message(c: Case):
    with pytest.raises(GraphError) as error:
        check_graph(load_graph(c.path, profile=c.profile, overrides=c.overrides))
    registered = {"<NODE TYPES>": one_of(NODES.names()), "<MODEL TYPES>": one_of(MODELS.names())}  # now, plugins included
    expected = c.expected
    for token, names in registered.items():
        expected = expected.replace(token, names)
    assert str(error.value) == expected


def test_table_covers_every_broken_graph_file():
    files = {p.name for p in (Path(__file__).parent / "broken_graphs").glob("*.yaml")}
    assert files == {Path(c.path).name for c in CASES}


def test_the_graph_the_cases_derive_from_is_valid():
    checked = check_graph(load_graph(f"{DIR}/with_profiles.yaml"))
    assert checked.order == ["data", "noise", "negatives", "positive_energy", "negative_energy", "cd"]
    assert check_graph(load_graph(f"{DIR}/with_profiles.yaml", profile="paper")).spec.nodes[
        "negatives"].config.steps == 100


def test_several_errors_are_reported_at_once():
    with pytest.raises(GraphError) as error:
        load_graph(f"{DIR}/several_errors.yaml")
    assert len(error.value.diagnostics) == 4
    assert len(str(error.value).splitlines()) == 4


CLI_CASES = [c for c in CASES if c.id in ("unknown_node_ref", "several_check_errors", "invalid_yaml")] + [
    attrs.evolve(c, id=f"cli-{c.id}") for c in CASES if c.id == "shape_mismatch"]


@pytest.mark.parametrize("c", _params(CLI_CASES))
def test_cli_check_reports_errors_without_traceback(c: Case, capsys):
    assert main(["check", c.path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == c.expected + "\n"
    assert "Traceback" not in captured.err
