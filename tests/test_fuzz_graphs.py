"""Fuzzing every graph in graphs/: hypothesis mutates the file's text (a line deleted, duplicated or
re-indented, a value replaced by something odd, a key misspelt, an unknown key added, the file
cut short, stray bytes inserted) and ``ebmgraph check`` must end in a clean load or in ebmgraph's
own error naming the file, within a time bound, never in a traceback. The outcome counts are
printed (run with ``-s``); ``--runslow`` runs ten times the examples."""

import collections
import contextlib
import io
import pathlib
import resource
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from ebmgraph.cli import main
from monte_carlo import examples

GRAPHS = sorted(pathlib.Path("graphs").glob("*.yaml"))
SECONDS_PER_EXAMPLE = 10
MEMORY_GROWTH_MB = 1024
ODD_VALUES = ["0", "-1", "1e308", "-1e-320", ".nan", ".inf", "9" * 400, "2**63", "''", "null", "true", "[]", "{}",
              "[1, [2, [3]]]", "{a: 1}", "!!python/object/apply:os.system [echo hi]", "!!float abc", "!weird x",
              "*missing", "&anchor x", "{", "[", "\"unterminated", "'", "- a", "a: b: c", "@x", "`x`", "%TAG",
              "\t1", "ü", "\\x00", "1_000", "0x10", "0o7", "+12", "1.", ".5", "1e-4", "[digits]", "energy",
              "negatives", "data", "conv_energy", "langevin", "{type: langevin}", "{type: nosuch}"]
KINDS = ("delete line", "duplicate line", "indent line", "dedent line", "replace value", "misspell key",
         "unknown key", "truncate", "insert bytes")


def _mutate(text: str, kind: str, where: float, value: str, noise: bytes) -> bytes:
    lines = text.splitlines(keepends=True)
    index = int(where * len(lines)) % len(lines)
    line = lines[index]
    if kind == "delete line":
        del lines[index]
    elif kind == "duplicate line":
        lines.insert(index, line)
    elif kind == "indent line":
        lines[index] = "  " + line
    elif kind == "dedent line":
        lines[index] = line[2:] if line.startswith("  ") else line
    elif kind == "replace value" and ":" in line:
        key = line.split(":", 1)[0]
        lines[index] = f"{key}: {value}\n"
    elif kind == "misspell key" and ":" in line:
        key, rest = line.split(":", 1)
        stripped = key.strip()
        if len(stripped) > 1:
            lines[index] = key.replace(stripped, stripped[1:] + stripped[0]) + ":" + rest
    elif kind == "unknown key":
        indent = line[: len(line) - len(line.lstrip())]
        lines.insert(index, f"{indent}frobnicate: {value}\n")
    elif kind == "truncate":
        return text.encode()[: int(where * len(text))]
    elif kind == "insert bytes":
        data = text.encode()
        offset = int(where * len(data))
        return data[:offset] + noise + data[offset:]
    return "".join(lines).encode()


def test_mutated_graph_files_load_cleanly_or_fail_with_a_located_error(tmp_path):
    counts: collections.Counter = collections.Counter()
    sources = {path: path.read_text() for path in GRAPHS}
    start_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=examples(10 * len(GRAPHS)), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(graph=st.sampled_from(GRAPHS), kind=st.sampled_from(KINDS), where=st.floats(0, 1, exclude_max=True),
           value=st.sampled_from(ODD_VALUES) | st.text(max_size=12), noise=st.binary(min_size=1, max_size=8))
    def one(graph, kind, where, value, noise):
        path = tmp_path / graph.name
        path.write_bytes(_mutate(sources[graph], kind, where, value, noise))
        err = io.StringIO()
        began = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["check", str(path)])
        seconds = time.perf_counter() - began
        assert seconds < SECONDS_PER_EXAMPLE, f"{kind} of {graph.name} took {seconds:.1f} s"
        assert code in (0, 2), (kind, graph.name, code, err.getvalue()[-2000:])
        if code == 2:
            message = err.getvalue()
            assert str(path) in message and "Traceback" not in message, (kind, graph.name, message[-2000:])
        counts[(kind, "clean" if code == 0 else "located error")] += 1

    one()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_memory) / 1024
    total = sum(counts.values())
    print(f"\nfuzzed {total} mutated graph files ({len(GRAPHS)} graphs); peak memory grew {grown:.0f} MB")
    for kind in KINDS:
        print(f"  {kind:>15}: {counts[(kind, 'clean')]:4d} clean, {counts[(kind, 'located error')]:4d} located errors")
    assert total >= examples(10 * len(GRAPHS)) // 2 and grown < MEMORY_GROWTH_MB
    assert sum(n for (_, outcome), n in counts.items() if outcome == "located error") > total // 4
