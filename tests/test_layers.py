"""The package's layers: imports only go down spec -> nodes -> engine -> (store, eval, viz) -> runs ->
(api, cli) -> the package's public face (ebmgraph/__init__.py, and __main__.py for python -m), with no import cycle between
packages (lazy imports inside functions count too)."""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "ebmgraph"

# Lower layers first; packages of the same layer may import each other as long as no cycle forms.
LAYERS = {"version": 0, "errors": 0, "spec": 1, "nodes": 2, "engine": 3, "store": 4, "eval": 4, "viz": 4, "runs": 5,
          "api": 6, "cli": 6, "__main__": 7, "__init__": 7}


def unit(path: Path) -> str:
    """The layer unit of a module: its subpackage, or the top-level module's name."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_units(path: Path) -> list[tuple[int, str]]:
    """(line, unit) of every ebmgraph import in the module, top-level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; import ebmgraph.* absolutely")
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                 else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] != "ebmgraph":
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # `from ebmgraph import x`: a submodule or a name of the root package
                found += [(node.lineno, alias.name if alias.name in LAYERS else "__init__") for alias in node.names]
    return found


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    assert {unit(path) for path in modules()} <= set(LAYERS)


def test_imports_only_go_down_the_layers():
    upward = []
    for path in modules():
        source = unit(path)
        for line, target in imported_units(path):
            if target != source and LAYERS[target] > LAYERS[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} (layer {LAYERS[source]}) imports "
                              f"{target} (layer {LAYERS[target]})")
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_packages():
    graph = nx.DiGraph()
    for path in modules():
        graph.add_edges_from((unit(path), target) for _, target in imported_units(path) if target != unit(path))
    assert nx.is_directed_acyclic_graph(graph), f"package import cycles: {list(nx.simple_cycles(graph))}"


def test_the_check_sees_an_upward_import(tmp_path):
    """Power check: a module of the spec layer importing the engine is reported."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from ebmgraph.engine.program import Program\n")
    assert imported_units(module) == [(2, "engine")]
    assert LAYERS["engine"] > LAYERS["spec"]
