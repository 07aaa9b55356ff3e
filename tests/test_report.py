"""The report as a reader sees it. On the committed outputs (fast): report.md is what the code renders, the HTML page
has no escaped markup, opens on a table of contents and the claims, and stays under 6 MB; the charts have their own
titles and their legends beside the curves. On the shared tiny pipeline (slow): every figure referenced is there,
every number equals the pipeline's metrics files (mean over seeds), the claims table follows its rule, the HTML
page is self-contained, a `report` run is in MLflow; and a missing input fails clearly, writing nothing."""

from __future__ import annotations

import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from helpers import seeds_of
from matplotlib.backends.backend_agg import FigureCanvasAgg
from mlflow.tracking import MlflowClient
from PIL import Image as PILImage
from test_claims import recomputed_verdicts

from vaelab.core.config import flatten, load_params
from vaelab.core.errors import ReportError
from vaelab.report import document
from vaelab.report.render import (MISSING, Contents, Gallery, Heading, Image, Para, Table, render_html,
                                  render_markdown, web_image)
from vaelab.report.sections import report_blocks
from vaelab.studies import claims
from vaelab.viz import charts
from vaelab.viz.model_figures import model_label

REPO = Path(__file__).resolve().parents[1]
# The page grows with the models and sections (one embedded WebP per figure shown): bound the bytes per embedded
# figure, which catches a figure embedded as PNG or at full resolution, not the number of models.
MAX_BYTES_PER_FIGURE = 80_000   # 67 kB with 11 models and 94 figures shown (2026-12-07)


def md_images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def md_table(md: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table under ``## heading``: first cell -> other cells."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return {r[0].strip("`"): r[1:] for r in rows[2:]}


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_every_figure_referenced_exists(tiny_pipeline: Path) -> None:
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    images = md_images(md)
    assert len(images) >= 3 * 5
    for rel in images:
        assert (tiny_pipeline / "reports" / rel).is_file(), rel


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_evaluation_numbers_are_the_mean_over_seeds_of_the_metrics_files(tiny_pipeline: Path) -> None:
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    names = list(params["models"])
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    header = next(line for line in md.split("## Evaluation\n", 1)[1].splitlines() if line.startswith("| metric"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [model_label(n) for n in names]
    table = md_table(md, "Evaluation")
    per_model = {n: json.loads((tiny_pipeline / "metrics" / "eval" / f"{n}.json").read_text()) for n in names}
    for key, cells in table.items():
        for name, cell in zip(names, cells):
            values = [flatten(per_model[name][f"seed{s}"]).get(key) for s in seeds_of(params, name)]
            if values[0] is None:
                assert cell == MISSING, (key, name, cell)
                continue
            text = cell.split(" ± ")[0]
            decimals = len(text.partition(".")[2])  # a metric's numbers share their decimal places
            mean = sum(values) / len(values)
            assert abs(float(text) - mean) <= 0.5 * 10 ** -decimals * (1 + 1e-9), (key, name, cell, values)
            assert " ± " in cell  # two seeds: an interval


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_claims_table_follows_the_stated_rule(tiny_pipeline: Path) -> None:
    rows = json.loads((tiny_pipeline / "metrics" / "claims.json").read_text())
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    assert "Rule:" in md
    assert [r["claim"] for r in rows] == [c["claim"] for c in yaml.safe_load((tiny_pipeline / "params.yaml").read_text())["claims"]]
    for row in rows:
        assert row["verdict"] in claims.VERDICTS and row["margin"] > 0 and row["why"]
        assert f"**{row['verdict']}**" in md
        assert set(row["alternatives"]) == {"model", "baseline"}
    # tests/test_claims.py recomputes the verdicts from the per-seed numbers, by scipy
    assert recomputed_verdicts(rows) == [r["verdict"] for r in rows]


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_html_is_self_contained_and_a_report_run_is_recorded(tiny_pipeline: Path) -> None:
    html = (tiny_pipeline / "reports" / "report.html").read_text()
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == len(md_images(md)) and all(s.startswith("data:image/webp;base64,") for s in sources)
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vaelab-report")  # apart from the training runs
    runs = client.search_runs([exp.experiment_id], "attributes.run_name = 'report'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert {"report.html", "claims.json"} <= {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert not client.search_runs([client.get_experiment_by_name("vaelab").experiment_id], "attributes.run_name = 'report'")


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_a_missing_input_fails_clearly_and_writes_nothing(pipeline_copy: Path, monkeypatch) -> None:
    monkeypatch.chdir(pipeline_copy)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline_copy / 'mlflow.db'}")
    monkeypatch.syspath_prepend(str(pipeline_copy / "stages"))
    sys.modules.pop("report", None)
    import report as report_stage

    before = (pipeline_copy / "reports" / "report.md").read_bytes()
    (pipeline_copy / "metrics" / "eval" / "vae_bce.json").unlink()
    with pytest.raises(ReportError, match=r"metrics/eval/vae_bce\.json: missing; run `dvc repro`"):
        report_stage.write_report(load_params(pipeline_copy / "params.yaml"), pipeline_copy)
    assert (pipeline_copy / "reports" / "report.md").read_bytes() == before
    assert not list(pipeline_copy.glob(".report-*"))  # no staging folder left behind


class _Text(HTMLParser):
    """The text a browser shows (entities decoded), tag by tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.h2: list[tuple[str, str]] = []   # (id, text) of each level-2 heading
        self.links: list[str] = []
        self._in_h2: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "h2":
            self._in_h2 = attrs.get("id", "")
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_h2 is not None:
            self.h2.append((self._in_h2, data))
            self._in_h2 = None


@pytest.fixture(scope="module")
def committed() -> dict:
    """The committed report's blocks, laid out again from the committed inputs (metrics/, plots/history,
    reports/figures, reports/study), and its report.md; report.html (images encoded) on first use."""
    blocks = report_blocks(document.read_inputs(load_params(REPO / "params.yaml"), REPO))
    return {"title": document.TITLE, "blocks": blocks, "md": render_markdown(document.TITLE, blocks)}


@pytest.fixture(scope="module")
def committed_html(committed: dict) -> str:
    return render_html(committed["title"], committed["blocks"], lambda rel: (REPO / "reports" / rel).read_bytes())


def test_the_committed_report_md_is_what_the_code_renders(committed: dict) -> None:
    assert (REPO / "reports" / "report.md").read_text() == committed["md"], "run `dvc repro -s report` and commit"


def test_report_md_shows_no_raw_html_and_its_images_are_relative_files(committed: dict) -> None:
    md = committed["md"]
    assert not re.search(r"</?\s*(?:br|p|b|i|img|a|table|div|span)\b[^>]*>", md)  # MLflow's preview shows it raw
    for rel in md_images(md):
        assert not rel.startswith(("/", "http")) and (REPO / "reports" / rel).is_file(), rel


def test_report_html_has_no_escaped_markup_and_one_sign_for_missing(committed_html: str) -> None:
    page = _Text()
    page.feed(committed_html)
    text = "".join(page.text)
    shown = re.findall(r"</?\s*(?:br|p|b|i|em|strong|code|img|a|table|tr|td|th|div|span|h\d|ul|li)\b[^>]*>|&[a-zA-Z]+;"
                       r"|&#x?[0-9a-fA-F]+;", text)
    assert not shown, f"markup shown as text: {shown[:5]}"
    assert "n/a" not in text and MISSING in text
    assert f"{MISSING} marks" in text  # the intro says what it means


def test_report_html_opens_on_contents_then_the_claims(committed: dict, committed_html: str) -> None:
    blocks = committed["blocks"]
    assert isinstance(blocks[0], Para) and isinstance(blocks[1], Contents)
    assert isinstance(blocks[2], Heading) and "claims" in blocks[2].text and isinstance(blocks[4], Table)
    page = _Text()
    page.feed(committed_html)
    ids = [i for i, _ in page.h2]
    assert len(ids) == len(set(ids)) >= 8 and page.links[:len(ids)] == ids   # the TOC links every section
    assert "claims" in page.h2[0][1]


def test_report_html_stays_small_per_figure(committed_html: str) -> None:
    figures = committed_html.count("<img ")
    assert figures > 0 and len(committed_html.encode()) <= MAX_BYTES_PER_FIGURE * figures


def test_the_models_side_by_side_are_galleries_with_labels_not_br() -> None:
    png = (REPO / "reports" / "study" / "sigma.png").read_bytes()
    blocks = [Heading("Figures & more"), Para("a **bold** caption"),
              Gallery([(f"M{i}", Image("study/sigma.png", f"M{i} sigma")) for i in range(7)], columns=5)]
    md = render_markdown("T", blocks)
    assert "<br>" not in md and md.count("![") == 7 and "| **M5** | **M6** |  |  |  |" in md
    html = render_html("T", blocks, lambda rel: png)
    assert 'id="figures--more"' in html and "<strong>bold</strong>" in html and "<strong>M5</strong>" in html
    assert html.count("<img ") == 7 and html.count('href="#z') == 7   # each figure embedded, opens full size


def test_web_image_shrinks_a_real_figure_and_is_deterministic() -> None:
    png = (REPO / "reports" / "figures" / "vae_bce" / "manifold.png").read_bytes()
    small = web_image(png)
    assert small == web_image(png) and small[:4] == b"RIFF" and small[8:12] == b"WEBP"
    assert len(small) < len(png) / 2
    with PILImage.open(io.BytesIO(png)) as a, PILImage.open(io.BytesIO(small)) as b:
        assert a.size == b.size


def test_each_chart_has_its_own_title_and_the_legend_beside_the_curves() -> None:
    curves = {f"M{i}": ([1, 2, 3], [3.0 + i, 2.0 + i, 1.0 + i]) for i in range(10)}
    loss = charts.loss_curves(curves, "Test loss per epoch")
    sigma = charts.loss_curves(curves, "Decoder σ per epoch (first seed)", ylabel="decoder σ")
    assert loss.axes[0].get_title() == "Test loss per epoch"
    assert sigma.axes[0].get_title() == "Decoder σ per epoch (first seed)"
    FigureCanvasAgg(loss).draw()
    ax, legend = loss.axes[0], loss.axes[0].get_legend()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1   # outside the axes: covers no curve
    assert "Decoder σ per epoch" in (REPO / "src" / "vaelab" / "report" / "document.py").read_text()  # σ's title
