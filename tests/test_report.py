"""``ebmgraph report``: one self-contained HTML page of a run, its plots also as PNG files."""

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from ebmgraph.cli import main
from ebmgraph.runs.runner import Runner
from ebmgraph.engine.load import load_graph
from ebmgraph.viz import plots
from ebmgraph.viz import report as report_module
from ebmgraph.viz.layout import LABEL_SIZE
from ebmgraph.viz.plots import metric_panels
from ebmgraph.viz.render import DPI
from ebmgraph.viz.report import write_report
from tests.conftest import FAST

SECTIONS = {"graph": "Graph", "training": "Training curves", "samples": "Samples over training",
            "evaluation": "Evaluation", "graph-file": "Resolved graph file"}
PANELS = ("losses", "contrastive_divergence", "kernel_grad_norms", "chain_energies", "steps_per_second",
          "eval_metrics", "graph")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    Runner(load_graph("graphs/short_run.yaml", None, FAST + ("eval.every=2",)), run_dir).run()
    return run_dir


@pytest.fixture(scope="module")
def report(short_run):
    assert main(["report", str(short_run)]) == 0
    return short_run / "report.html"


def _sources(page: str) -> list[str]:
    return re.findall(r'\bsrc="([^"]*)"', page)


def test_report_has_every_section_and_embeds_every_picture(short_run, report):
    page = report.read_text()
    for anchor, title in SECTIONS.items():
        assert f'<section id="{anchor}"><h2>{title}' in page, anchor
        assert f'href="#{anchor}"' in page
    header = page[:page.index("<nav>")]
    assert "short_run" in header and "Nijkamp" in header and "4 of 4" in header and str(short_run.resolve()) in header
    assert "<script" not in page and "<link" not in page and "url(" not in page  # self-contained
    sources = _sources(page)
    assert len(sources) >= len(PANELS) + 2  # panels, two sample grids, eval samples
    for source in sources:
        assert source.startswith("data:image/png;base64,"), source[:60]
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "step 2</figcaption>" in page and "step 4</figcaption>" in page
    assert "<pre>" + html.escape((short_run / "graph.yaml").read_text()) + "</pre>" in page
    last = json.loads((short_run / "eval.json").read_text())
    for metric in last["metrics"]:
        assert f"<th>{metric}</th>" in page


def test_report_writes_one_png_per_panel(short_run, report):
    written = {path.stem for path in (short_run / "report").glob("*.png")}
    assert set(PANELS) <= written
    for name in PANELS:
        image = matplotlib.image.imread(short_run / "report" / f"{name}.png")
        assert image.shape[0] > 100 and image[..., :3].std() > 0.05, name


def test_report_to_another_path_and_with_missing_files(tmp_path, short_run):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(short_run / "graph.yaml", bare / "graph.yaml")
    lines = (short_run / "metrics.jsonl").read_text().splitlines()
    (bare / "metrics.jsonl").write_text("\n".join(lines[:2]) + '\n{"step": 3, "loss/c')  # a run still writing
    out = write_report(bare, str(tmp_path / "elsewhere.html"))
    assert out == tmp_path / "elsewhere.html"
    page = out.read_text()
    assert "no eval.jsonl" in page and "no samples/step_*.png" in page and "Replay banks" not in page
    assert "2 records, steps 1 to 2" in page

    empty = tmp_path / "empty"
    empty.mkdir()
    page = write_report(empty).read_text()
    assert "no metrics.jsonl" in page and "no graph.yaml" in page


def test_bank_graph_report_shows_banks(tmp_path):
    run_dir = tmp_path / "igebm"
    overrides = FAST + ("train.steps=2", "nodes.bank.capacity=64", "eval.metrics=[ood]")
    Runner(load_graph("graphs/igebm.yaml", None, overrides), run_dir).run()
    page = write_report(run_dir).read_text()
    assert '<section id="banks"><h2>Replay banks' in page
    written = {path.stem for path in (run_dir / "report").glob("*.png")}
    assert {"bank_age", "bank_reinit", "banks_h5_bank_items", "banks_h5_bank_age_histogram"} <= written


def test_panels_group_keys_by_pattern():
    keys = ["loss/cd", "loss/reg", "cd/E+", "cd/E-", "cd/gap", "chain/grad_norm", "adam/grad_norm",
            "chain/energy_start", "chain/energy_end", "chain/acceptance", "chain/mobility", "adam/lr", "bank/age", "bank/reinit_fraction",
            "steps_per_second", "custom/thing"]
    panels = {panel.slug: panel.keys for panel in metric_panels(keys, optimizers=["adam"])}
    assert panels == {
        "optimizer_grad_norms": ("adam/grad_norm",), "losses": ("loss/cd", "loss/reg"),
        "contrastive_divergence": ("cd/E+", "cd/E-", "cd/gap"), "kernel_grad_norms": ("chain/grad_norm",),
        "chain_energies": ("chain/energy_start", "chain/energy_end"), "acceptance": ("chain/acceptance",), "mobility": ("chain/mobility",),
        "learning_rates": ("adam/lr",), "bank_age": ("bank/age",), "bank_reinit": ("bank/reinit_fraction",),
        "steps_per_second": ("steps_per_second",), "other": ("custom/thing",)}


def _chromium() -> str | None:
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")


def test_report_renders_in_headless_chromium(tmp_path, report):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    report.resolve().as_uri()], timeout=120, capture_output=True)
    assert shot.exists(), "chromium wrote no screenshot"
    image = matplotlib.image.imread(shot)[..., :3]
    assert image.shape[:2] == (2000, 1200)
    assert image.std() > 0.1 and (image < 0.95).any(axis=-1).mean() > 0.05  # not blank, not all white


def _crowded_axes(fig) -> list[str]:
    """Axes where one series varies over less than 1 % of the axis's range while another fills a
    tenth of it or more (log axes in decades)."""
    crowded = []
    for ax in fig.axes:
        log = ax.get_yscale() == "log"
        low, high = (np.log10(ax.get_ylim()) if log else ax.get_ylim())
        spans = []
        for line in ax.get_lines():
            if line.get_transform() != ax.transData:  # the zero line is drawn in axes coordinates
                continue
            values = np.asarray(line.get_ydata(), dtype=float)
            values = np.log10(values) if log else values
            spans.append((line.get_label(), np.nanmax(values) - np.nanmin(values)))
        if spans and max(s for _, s in spans) >= 0.1 * (high - low):
            crowded += [f"{ax.get_title()}: {label}" for label, span in spans if span < 0.01 * (high - low)]
    return crowded


def _records(**series):
    return [{"step": step + 1, **{key: values[step] for key, values in series.items()}} for step in range(30)]


def test_series_of_different_scales_get_axes_of_their_own(monkeypatch):
    rng = np.random.default_rng(0)
    records = _records(**{"x_chain/energy_end": 1 + 0.1 * rng.standard_normal(30),
                          "z_chain/energy_end": 200 + 10 * rng.standard_normal(30),
                          "x_chain/energy_start": 1.2 + 0.1 * rng.standard_normal(30)})
    panel = metric_panels(list(records[0])[1:])[0]
    fig = plots.line_figure(panel, records)
    assert len(fig.axes) == 2 and not _crowded_axes(fig)
    assert {line.get_label() for line in fig.axes[0].get_lines()} == {"x_chain/energy_end", "x_chain/energy_start"}
    monkeypatch.setattr(plots, "scale_groups", lambda extents: [list(extents)])  # power check: one axis for all
    assert _crowded_axes(plots.line_figure(panel, records)) == ["Chain energies: x_chain/energy_end",
                                                                "Chain energies: x_chain/energy_start"]


@pytest.fixture(scope="module")
def dual_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dual") / "run"
    settings = ("train.steps=12", "train.log_every=1", "train.progress=false", "data.batch_size=16",
                "models.energy.channels=4", "models.generator.channels=8", "models.encoder.channels=8",
                "nodes.revised_x.steps=2", "nodes.revised_z.steps=2", "eval.n=16", "eval.metrics=[ood]")
    Runner(load_graph("graphs/dual_mcmc.yaml", None, settings), run_dir).run()
    assert main(["report", str(run_dir)]) == 0
    return run_dir


def test_every_training_panel_has_one_scale_per_axis_group(dual_run, short_run):
    for run_dir in (dual_run, short_run):
        records = plots.read_jsonl(run_dir / "metrics.jsonl")
        for panel in metric_panels(plots.scalar_keys(records), ["energy_optimizer", "generator_optimizer"]):
            assert not _crowded_axes(plots.line_figure(panel, records)), (run_dir, panel.slug)


def test_a_single_evaluation_is_a_table_not_plots(dual_run):
    page = (dual_run / "report.html").read_text()
    assert "1 evaluation in eval.jsonl and no metric that changes" in page
    assert not (dual_run / "report" / "eval_metrics.png").exists()
    assert "<th>auroc_uniform_noise</th>" in page


def test_list_metrics_name_their_axes():
    assert report_module._bar_axes("histogram") == ("predicted class (digit)", "samples")
    assert report_module._bar_axes("energy_autocorrelation") == ("lag", "autocorrelation")


MEASURE = """<script>
window.addEventListener("load", () => {
  const img = document.querySelector('img[alt^="dataflow graph"]');
  const page = document.body.getBoundingClientRect().width;
  document.body.setAttribute("data-measured", JSON.stringify(
    {shown: img.getBoundingClientRect().width, natural: img.naturalWidth, page: page}));
});
</script></body>"""


def test_graph_drawing_text_is_legible_at_1400_px(tmp_path, dual_run):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    page = tmp_path / "measured.html"
    page.write_text((dual_run / "report.html").read_text().replace("</body>", MEASURE))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         timeout=120, capture_output=True, text=True).stdout
    measured = json.loads(html.unescape(re.search(r'data-measured="([^"]*)"', dom).group(1)))
    assert measured["natural"] > measured["page"]  # wider than the page: shrunk to fit, its text would be ~5 px
    smallest_text = LABEL_SIZE * DPI / 72 * measured["shown"] / measured["natural"]
    assert smallest_text >= 9.0, measured
