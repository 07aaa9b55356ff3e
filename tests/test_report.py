"""The comparison report: every figure of every model referenced and present, numbers equal to the pipeline's
metrics files, a self-contained HTML page, a `report` run in MLflow; and `dvc repro` end to end."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import run
from vaelab import figures, plots, tracking
from vaelab.config import FiguresConfig, MlflowConfig, ModelConfig, Params, flatten, load_params
from vaelab.experiment import final_metrics, history_csv
from vaelab.files import write_atomic
from vaelab.report import ReportError, write_report
from vaelab.train import Epoch

# Deliberately not alphabetical: the report's columns follow params.yaml's order.
MODELS = {"vae_bce": ModelConfig(kind="vae", likelihood="bernoulli", latent_dim=3),
          "ae": ModelConfig(kind="ae"), "vae_mse": ModelConfig(kind="vae")}
EVAL = {"ae": {"recon": {"mse": 12.5}, "fid": 3.25}, "vae_mse": {"recon": {"mse": 10.0}, "knn_acc": 0.9}}


def md_images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def md_table(md: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table under ``## heading``: metric -> cells."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return {r[0]: r[1:] for r in rows[2:]}


def assert_table_matches(table: dict[str, list[str]], per_model: dict[str, dict], names: list[str]) -> None:
    flat = {n: flatten(per_model.get(n, {})) for n in names}
    assert set(table) == {k for f in flat.values() for k in f}
    for key, cells in table.items():
        for name, cell in zip(names, cells):
            if key not in flat[name]:
                assert cell == "—", (key, name)
            else:
                assert math.isclose(float(cell), flat[name][key], rel_tol=1e-5, abs_tol=1e-12), (key, name, cell)


@pytest.fixture
def outputs(tmp_path, mnist_root, monkeypatch) -> tuple[Path, Params]:
    """A project root holding what the train and figures stages write, and a real MLflow store."""
    root = tmp_path / "proj"
    (root / "data").parent.mkdir(parents=True)
    (root / "data").symlink_to(mnist_root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    rng = np.random.default_rng(0)
    for i, (name, cfg) in enumerate(MODELS.items()):
        history = [Epoch(e, {"loss": 100.0 / e + i, "recon": 90.0 / e, "kl": 1.0 / 3 + i},
                         {"loss": 110.0 / e + i, "recon": 95.0 / e, "kl": 0.123456789 * e}) for e in (1, 2, 3)]
        write_atomic(root / "metrics" / f"{name}.json", json.dumps(final_metrics(history)))
        write_atomic(root / "plots" / name / "history.csv", history_csv(history))
        figures.save_figures({k: plots.image_grid(rng.random((4, 784)), 2, f"{name} {k}")
                              for k in figures.expected_kinds(cfg)}, root / "reports" / "figures" / name, 40)
    for name, values in EVAL.items():
        write_atomic(root / "metrics" / "eval" / f"{name}.json", json.dumps(values))
    return root, Params(models=MODELS, mlflow=MlflowConfig("t"), figures=FiguresConfig(data_grid=3, dpi=40))


def test_report_shows_every_figure_and_the_pipeline_numbers(outputs):
    root, params = outputs
    names = list(MODELS)
    write_report(params, root)
    reports = root / "reports"
    md = (reports / "report.md").read_text()

    images = md_images(md)
    expected = {"figures/data.png", "figures/test_loss.png"} | {
        f"figures/{n}/{k}.png" for n, cfg in MODELS.items() for k in figures.expected_kinds(cfg)}
    assert set(images) == expected and len(images) == len(expected)
    assert all((reports / rel).is_file() for rel in images)
    assert "|  | VAE-BCE | AE | VAE-MSE |" in md
    figure_rows = md_table(md, "The models side by side")
    assert figure_rows["**Samples from the prior**<br>Only a VAE is generative: decoding z ~ N(0, I) gives new "
                       "digits (the AE has no prior to sample)."][1] == "n/a"
    assert sum(cells.count("n/a") for cells in figure_rows.values()) == 2  # AE prior, 3-D VAE-BCE manifold

    assert_table_matches(md_table(md, "Final metrics"),
                         {n: json.loads((root / "metrics" / f"{n}.json").read_text()) for n in names}, names)
    assert_table_matches(md_table(md, "Evaluation"), EVAL, names)

    page = (reports / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert len(refs) == len(images) and all(r.startswith("data:image/png;base64,") for r in refs)
    for rel, ref in zip(images, refs):  # the same pictures, in the same order, as the Markdown's files
        assert base64.b64decode(ref.split(",", 1)[1]) == (reports / rel).read_bytes(), rel

    tracking.setup("t")
    (report_run,) = MlflowClient().search_runs([tracking.setup("t")], "attributes.run_name = 'report'")
    client = MlflowClient()
    logged = {a.path for a in client.list_artifacts(report_run.info.run_id)}
    assert {"report.md", "report.html", "figures"} <= logged
    for name in names:
        assert len(client.list_artifacts(report_run.info.run_id, f"figures/{name}")) == len(
            figures.expected_kinds(MODELS[name]))
    assert not list(root.glob(".report-*"))


def test_report_without_metrics_fails_clearly_and_writes_nothing(outputs):
    root, params = outputs
    (root / "metrics" / "ae.json").unlink()
    with pytest.raises(ReportError, match=r"metrics/ae.json: missing"):
        write_report(params, root)
    assert not (root / "reports" / "report.md").exists() and not (root / "reports" / "report.html").exists()
    (root / "reports" / "figures" / "vae_mse" / "latent.png").unlink()
    with pytest.raises(ReportError, match=r"figures/vae_mse/latent.png: missing"):
        write_report(params, root)


@pytest.mark.slow
def test_dvc_repro_draws_the_figures_and_the_report(project):
    run(["dvc", "repro"], project)
    reports = project / "reports"
    md = (reports / "report.md").read_text()
    params = load_params(project / "params.yaml")
    names = list(params.models)
    for name, cfg in params.models.items():
        drawn = sorted(p.name for p in (reports / "figures" / name).glob("*.png"))
        assert drawn == sorted(f"{k}.png" for k in figures.expected_kinds(cfg))
        assert all(f"figures/{name}/{png}" in md_images(md) for png in drawn)
    assert all((reports / rel).is_file() for rel in md_images(md))
    assert_table_matches(md_table(md, "Final metrics"),
                         {n: json.loads((project / "metrics" / f"{n}.json").read_text()) for n in names}, names)
    assert "up to date" in run(["dvc", "status"], project).stdout

    shown = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    expected = {f"reports/figures/{n}/{k}.png" for n, cfg in params.models.items() for k in figures.expected_kinds(cfg)}
    for path in expected | {"reports/figures/data.png", "reports/figures/test_loss.png"}:
        assert shown[path][0]["type"] == "image", path

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    for name in names:
        (train_run,) = client.search_runs([experiment.experiment_id], f"tags.model = '{name}'")
        assert {Path(a.path).name for a in client.list_artifacts(train_run.info.run_id, "figures")} == \
            {f"{k}.png" for k in figures.expected_kinds(params.models[name])}
    assert client.search_runs([experiment.experiment_id], "attributes.run_name = 'report'")
