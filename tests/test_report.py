"""The report of the shared tiny pipeline: every figure referenced is there, every number equals the pipeline's
metrics files (mean over seeds), the claims table follows its rule, the HTML page is self-contained, a `report` run
is in MLflow; and a missing input fails clearly, writing nothing."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from vaelab.config import flatten, load_params
from vaelab.errors import ReportError
from vaelab.viz.model_figures import model_label


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
    names, seeds = list(params["models"]), params["seeds"]
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    header = next(line for line in md.split("## Evaluation\n", 1)[1].splitlines() if line.startswith("| metric"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [model_label(n) for n in names]
    table = md_table(md, "Evaluation")
    per_model = {n: json.loads((tiny_pipeline / "metrics" / "eval" / f"{n}.json").read_text()) for n in names}
    for key, cells in table.items():
        for name, cell in zip(names, cells):
            values = [flatten(per_model[name][f"seed{s}"]).get(key) for s in seeds]
            if values[0] is None:
                assert cell == "—", (key, name, cell)
                continue
            shown = float(cell.split(" ± ")[0])
            mean = sum(values) / len(values)
            assert math.isclose(shown, mean, rel_tol=1e-3, abs_tol=1e-9), (key, name, cell, values)
            assert " ± " in cell  # two seeds: an interval


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_claims_table_follows_the_stated_rule(tiny_pipeline: Path) -> None:
    rows = json.loads((tiny_pipeline / "metrics" / "claims.json").read_text())
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    assert "Rule:" in md
    for row in rows:
        low, high = row["ci95_low"], row["ci95_high"]
        expected = ("supported" if low > 0 else "contradicted" if high < 0 else "inconclusive")
        assert row["verdict"] == expected, row
        assert f"**{row['verdict']}**" in md


@pytest.mark.slow  # the shared tiny `dvc repro`
def test_html_is_self_contained_and_a_report_run_is_recorded(tiny_pipeline: Path) -> None:
    html = (tiny_pipeline / "reports" / "report.html").read_text()
    md = (tiny_pipeline / "reports" / "report.md").read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == len(md_images(md)) and all(s.startswith("data:image/png;base64,") for s in sources)
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
