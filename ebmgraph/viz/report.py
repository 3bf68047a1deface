"""``ebmgraph report RUN_DIR``: one self-contained HTML page of a run (every picture embedded as a
PNG data URI, no external CSS or JavaScript), and every plot also as a PNG in ``RUN_DIR/report/``.

Sections: header, graph drawing, training curves (metrics.jsonl keys grouped by name pattern),
samples over training, evaluation (eval.jsonl over time, the last eval.json), fresh samples from
``ebmgraph sample``, replay banks (banks.h5), and the resolved graph file. Missing files leave
their section with a note."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import struct
import tempfile
from pathlib import Path

import attrs

from ebmgraph.store.atomic import atomic_path
from ebmgraph.store.run_files import (EVAL_FILE, EVAL_LOG, EVAL_PNG, GRAPH_FILE, METRICS_FILE, ORIGIN_FILE, PLAN_FILE,
                                      SAMPLES_DIR)
from ebmgraph.viz import plots
from ebmgraph.viz.layout import LABEL_SIZE
from ebmgraph.viz.render import DPI

REPORT_FILE = "report.html"
REPORT_DIR = "report"
MAX_SAMPLE_GRIDS = 8
GRAPH_SCALE = 0.8  # the drawing's PNG pixels per page pixel: its 7-point labels are 9.3 px high
STEP_PNG = re.compile(r"step_(\d+)\.png$")
#: (x label, y label) of the list-valued evaluation metrics drawn as bars.
BAR_AXES = {"histogram": ("predicted class (digit)", "samples"), "autocorrelation": ("lag", "autocorrelation")}

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1d2327; background: #fff; line-height: 1.45; }
header { border-bottom: 2px solid #2c6e9b; padding: 18px 0 10px; margin-bottom: 8px; }
h1 { margin: 0 0 4px; font-size: 28px; } h1 small { color: #666; font-weight: normal; font-size: 15px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 34px; color: #2c6e9b; }
h3 { margin: 18px 0 6px; font-size: 16px; }
.paper { font-style: italic; color: #444; margin: 2px 0 10px; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f3f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: monospace; }
nav { font-size: 14px; margin: 8px 0; } nav a { margin-right: 14px; color: #2c6e9b; }
.note { color: #8a5a00; background: #fff7e0; border-left: 3px solid #e0a800; padding: 4px 10px; font-size: 14px; }
.muted { color: #666; font-size: 13px; margin: 2px 0 8px; }
.panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 14px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
.stack figure { margin-bottom: 18px; }
img.small { max-width: min(100%, 520px); }
.scroll { overflow-x: auto; } img.native { max-width: none; margin: 0; }
figure { margin: 0; } figcaption { font-size: 13px; color: #444; text-align: center; }
img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 10px; overflow-x: auto; font-size: 12.5px; }
"""


@attrs.define
class _Report:
    run_dir: Path
    panel_dir: Path
    sections: list[tuple[str, str, str]] = attrs.field(factory=list)  # (anchor, title, body HTML)
    written: list[Path] = attrs.field(factory=list)

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def plot(self, name: str, png: bytes, alt: str, caption: str = "", css: str = "", style: str = "") -> str:
        """Write ``png`` to report/NAME.png; return its embedded <figure>."""
        path = self.panel_dir / f"{plots.slug(name)}.png"
        with atomic_path(path) as temporary:
            temporary.write_bytes(png)
        self.written.append(path)
        return _figure(png, alt, caption, css, style)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(png: bytes, alt: str, caption: str = "", css: str = "", style: str = "") -> str:
    cls = (f' class="{css}"' if css else "") + (f' style="{style}"' if style else "")
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img{cls} alt="{html.escape(alt)}" src="{_data_uri(png)}">{text}</figure>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value)
    return "—" if value is None else str(value)


def _table(rows: list[tuple[str, object]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    body = "".join(
        f"<tr><th>{html.escape(str(key))}</th>"
        f'<td{" class=num" if plots.is_scalar(value) else ""}>{html.escape(_format(value))}</td></tr>'
        for key, value in rows)
    return f"<table>{head}{body}</table>"


def _origin(run_dir: Path) -> dict:
    """The graph file and profile the run was started from (origin.json), if recorded."""
    path = run_dir / ORIGIN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _load_spec(run_dir: Path):
    """(GraphSpec or None, error text or None)."""
    from ebmgraph.engine.load import load_graph

    try:
        return load_graph(run_dir / GRAPH_FILE), None
    except Exception as error:  # a report is still useful from the logs alone
        return None, f"{type(error).__name__}: {error}"


def write_report(run_dir: Path, output: str | None = None) -> Path:
    """Write RUN_DIR/report.html (or ``output``) and the panels as RUN_DIR/report/*.png; return the HTML path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        from ebmgraph.errors import DataError

        raise DataError(f"run directory '{run_dir}' not found")
    report = _Report(run_dir, run_dir / REPORT_DIR)
    spec, spec_error = _load_spec(run_dir) if (run_dir / GRAPH_FILE).exists() else (None, None)
    metrics = plots.read_jsonl(run_dir / METRICS_FILE)
    evaluations = plots.read_jsonl(run_dir / EVAL_LOG)

    _graph_section(report, spec, spec_error)
    _training_section(report, metrics, spec)
    _samples_section(report)
    _evaluation_section(report, evaluations)
    _fresh_section(report)
    _banks_section(report)
    _graph_file_section(report)

    path = Path(output) if output else run_dir / REPORT_FILE
    page = _page(run_dir, spec, spec_error, metrics, report.sections)
    with atomic_path(path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return path


def _page(run_dir: Path, spec, spec_error: str | None, metrics: list[dict], sections) -> str:
    name = spec.name if spec else run_dir.name
    title = f"ebmgraph report: {name}"
    nav = "".join(f'<a href="#{anchor}">{html.escape(heading)}</a>' for anchor, heading, _ in sections)
    body = "\n".join(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>\n{content}</section>'
                     for anchor, heading, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"{_header(run_dir, spec, spec_error, metrics)}\n<nav>{nav}</nav>\n{body}\n</body></html>\n")


def _header(run_dir: Path, spec, spec_error: str | None, metrics: list[dict]) -> str:
    done = max((r["step"] for r in metrics if plots.is_scalar(r.get("step"))), default=None)
    rows: list[tuple[str, object]] = []
    if spec is not None:
        from ebmgraph.nodes.registry import NODES

        kernels = [f"{n} ({node.type})" for n, node in spec.all_nodes().items()
                   if getattr(NODES.get(node.type), "family", None) == "kernel"]
        origin = _origin(run_dir)
        rows += [("graph file", origin.get("graph_file") or "not recorded"),
                 ("profile", origin.get("profile") or "none"),
                 ("data", spec.data.type), ("models", ", ".join(f"{n} ({m.type})" for n, m in spec.models.items())),
                 ("kernels", ", ".join(kernels) or None),
                 ("losses", ", ".join(f"{n} ({loss.type})" for n, loss in spec.losses.items())),
                 ("seed", spec.seed), ("device", spec.train.device)]
    total = spec.train.steps if spec is not None else None
    rows.append(("steps done", f"{done if done is not None else 'none logged'}"
                               + (f" of {total}" if total is not None else "")))
    if metrics:
        last = metrics[-1]
        rows += [(key, last[key]) for key in last if key.startswith("loss/") and plots.is_scalar(last[key])]
    rows.append(("run directory", str(run_dir.resolve())))
    name = spec.name if spec is not None else run_dir.name
    paper = f'<p class="paper">{html.escape(spec.paper)}</p>' if spec is not None and spec.paper else ""
    problem = _note(f"{GRAPH_FILE} could not be loaded: {spec_error}") if spec_error else ""
    return (f"<header><h1>{html.escape(name)} <small>ebmgraph run report</small></h1>{paper}{problem}"
            f"{_table(rows)}</header>")


def _run_plan(run_dir: Path, spec):
    """The step plan the run recorded (plan.json), or, for a run directory without one, the graph checked anew."""
    from ebmgraph.engine.check import check_graph
    from ebmgraph.engine.plan_record import plan_from_record

    path = run_dir / PLAN_FILE
    return plan_from_record(spec, json.loads(path.read_text())) if path.exists() else check_graph(spec)


def _graph_section(report: _Report, spec, spec_error: str | None) -> None:
    if spec is None:
        report.add("graph", "Graph", _note(f"no drawing: {spec_error or GRAPH_FILE + ' not found'}"))
        return
    from ebmgraph.viz.drawing import draw

    try:
        plan = _run_plan(report.run_dir, spec)
        with tempfile.TemporaryDirectory() as tmp:
            png_path = Path(tmp) / "graph.png"
            draw(plan, str(png_path), engine="matplotlib")
            png = png_path.read_bytes()
    except Exception as error:  # the rest of the report does not depend on the drawing
        report.add("graph", "Graph", _note(f"no drawing: {type(error).__name__}: {error}"))
        return
    width = round(GRAPH_SCALE * struct.unpack(">I", png[16:20])[0])  # the PNG header's width
    figure = report.plot("graph", png, f"dataflow graph of {spec.name}",
                         f"the dataflow graph (ebmgraph draw), its smallest text {GRAPH_SCALE * LABEL_SIZE * DPI / 72:.0f} "
                         f"px high: a wide graph scrolls sideways; full size in {REPORT_DIR}/graph.png",
                         "native", f"width: {width}px")
    report.add("graph", "Graph", f'<div class="scroll">{figure}</div>')


def _training_section(report: _Report, metrics: list[dict], spec) -> None:
    if not metrics:
        report.add("training", "Training curves", _note(f"no {METRICS_FILE}: nothing was logged yet"))
        return
    optimizers = list(spec.optimizers) if spec is not None else []
    panels = plots.metric_panels(plots.scalar_keys(metrics), optimizers)
    figures = []
    for panel in panels:
        png = plots.line_panel(panel, metrics)
        figures.append(report.plot(panel.slug, png, panel.title, panel.description))
    first, last = metrics[0].get("step"), metrics[-1].get("step")
    text = (f'<p class="muted">{METRICS_FILE}: {len(metrics)} records, steps {first} to {last}. '
            f"Panels are also in {REPORT_DIR}/ as PNG files.</p>")
    report.add("training", "Training curves", text + f'<div class="panels">{"".join(figures)}</div>')


def _sample_grids(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("step_*.png") if directory.is_dir() else ():
        match = STEP_PNG.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _subset(items: list, most: int) -> list:
    """At most ``most`` items, evenly spaced, always with the first and the last."""
    if len(items) <= most:
        return items
    indices = sorted({round(i * (len(items) - 1) / (most - 1)) for i in range(most)})
    return [items[i] for i in indices]


def _samples_section(report: _Report) -> None:
    grids = _sample_grids(report.run_dir / SAMPLES_DIR)
    if not grids:
        report.add("samples", "Samples over training", _note(f"no {SAMPLES_DIR}/step_*.png"))
        return
    shown = _subset(grids, MAX_SAMPLE_GRIDS)
    text = (f'<p class="muted">{len(shown)} of {len(grids)} sample pictures ({SAMPLES_DIR}/step_NNNNNN.png): '
            f"the samples of the training step.</p>")
    figures = "".join(_figure(path.read_bytes(), f"samples at step {step}", f"step {step}")
                      for step, path in shown)
    report.add("samples", "Samples over training", text + f'<div class="gallery">{figures}</div>')


def _evaluation_section(report: _Report, evaluations: list[dict]) -> None:
    parts = []
    drawn = plots.eval_panel(evaluations)
    if drawn is not None:
        png, names = drawn
        parts.append(report.plot("eval_metrics", png, "evaluation metrics over training",
                                 f"{len(evaluations)} evaluation{'s' if len(evaluations) != 1 else ''} ({EVAL_LOG})"))
    elif evaluations:
        parts.append(f'<p class="muted">{len(evaluations)} evaluation{"s" if len(evaluations) != 1 else ""} '
                     f"in {EVAL_LOG} and no metric that changes over them: the table below has the values (plots "
                     "over training appear from two evaluations on).</p>")
    else:
        parts.append(_note(f"no {EVAL_LOG}: the run was not evaluated during training (eval.every) "
                           f"and `ebmgraph eval` was not run"))
    last_path = report.run_dir / EVAL_FILE
    last = None
    if last_path.exists():
        try:
            last = json.loads(last_path.read_text())
        except json.JSONDecodeError as error:
            parts.append(_note(f"{EVAL_FILE} is not valid JSON: {error}"))
    if isinstance(last, dict):
        rows = [(key, value) for key, value in last.items() if key != "metrics"]
        metric_rows = list((last.get("metrics") or {}).items())
        parts.append(f"<h3>Last evaluation ({EVAL_FILE}, step {html.escape(_format(last.get('step')))})</h3>"
                     f'<div class="panels"><div>{_table(metric_rows, ("metric", "value"))}</div>'
                     f"<div>{_table(rows, ('field', 'value'))}</div></div>")
        bars = [(key, value) for key, value in metric_rows
                if isinstance(value, list) and value and all(plots.is_scalar(v) for v in value)]
        figures = [report.plot(f"eval_{key}", plots.bars_panel(f"{key} (last evaluation)", value,
                                                               *_bar_axes(key)), key)
                   for key, value in bars]
        eval_png = report.run_dir / EVAL_PNG
        if eval_png.exists():
            figures.append(_figure(eval_png.read_bytes(), "evaluation samples", f"{EVAL_PNG}: samples of the last "
                                                                                f"evaluation", "small"))
        if figures:
            parts.append(f'<div class="panels">{"".join(figures)}</div>')
    elif not last_path.exists():
        parts.append(_note(f"no {EVAL_FILE}"))
    report.add("evaluation", "Evaluation", "\n".join(parts))


def _bar_axes(key: str) -> tuple[str, str]:
    """The axis labels of a list-valued metric, by its name or its last part (``energy_autocorrelation``)."""
    return next((axes for name, axes in BAR_AXES.items() if key == name or key.endswith("_" + name)),
                (f"{key} index", "value"))


def _fresh_section(report: _Report) -> None:
    """Pictures ``ebmgraph sample`` left in samples/ (fresh chains and their trajectories), if any."""
    directory = report.run_dir / SAMPLES_DIR
    found = sorted(p for p in directory.glob("*.png") if not STEP_PNG.search(p.name)) if directory.is_dir() else []
    if not found:
        return
    figures = "".join(_figure(p.read_bytes(), p.name, f"{SAMPLES_DIR}/{p.name}") for p in found)
    text = ('<p class="muted">fresh chains drawn by <code>ebmgraph sample</code> from the trained energy '
            "(with <code>--trajectory</code>: the chains over their steps and their energy)</p>")
    report.add("fresh", "Fresh samples (ebmgraph sample)", text + f'<div class="stack">{figures}</div>')


def _banks_section(report: _Report) -> None:
    from ebmgraph.store.banks_h5 import read_bank_states
    from ebmgraph.store.checkpoint import latest
    from ebmgraph.store.rank_shards import BANKS
    from ebmgraph.store.checkpoint_dir import has_checkpoint
    from ebmgraph.viz.grids import save_samples_png

    if not has_checkpoint(report.run_dir):
        return
    try:
        path = latest(report.run_dir).file(BANKS)
        if not path.exists():
            return
        step, states = read_bank_states(path)
        parts = [f'<p class="muted">{html.escape(str(path.relative_to(report.run_dir)))} at step {step}</p>']
        for name, state in states.items():
            rows = [*state.counters().items(), *([("dtype", state.dtype)] if state.dtype else [])]
            figures = []
            if state.storage is not None and state.size:
                items = state.stored()[:64 if state.storage.ndim == 4 else 2000]
                with tempfile.TemporaryDirectory() as tmp:
                    grid = Path(tmp) / "bank.png"
                    save_samples_png(items, grid, title=f"bank '{name}': first {len(items)} items")
                    figures.append(report.plot(f"banks_h5_{name}_items", grid.read_bytes(), f"bank {name} items"))
                figures.append(report.plot(f"banks_h5_{name}_age_histogram", plots.histogram_panel(
                    f"bank '{name}': age of the items", state.stored_age().double().numpy(),
                    "age (steps since drawn as noise)"), f"bank {name} age histogram"))
            parts.append(f"<h3>{html.escape(name)}</h3>{_table(rows)}"
                         + (f'<div class="panels">{"".join(figures)}</div>' if figures else ""))
        report.add("banks", "Replay banks", "\n".join(parts))
    except Exception as error:  # a damaged bank file must not cost the rest of the report
        report.add("banks", "Replay banks", _note(f"the banks could not be read: {type(error).__name__}: {error}"))


def _graph_file_section(report: _Report) -> None:
    path = report.run_dir / GRAPH_FILE
    if not path.exists():
        report.add("graph-file", "Resolved graph file", _note(f"no {GRAPH_FILE}"))
        return
    report.add("graph-file", f"Resolved graph file ({GRAPH_FILE})",
               f'<p class="muted">the graph as run: profile and --set overrides applied, every default written '
               f"out</p><pre>{html.escape(path.read_text())}</pre>")
