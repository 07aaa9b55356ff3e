"""The ``report`` stage: every model side by side, as reports/report.md and a self-contained report.html.

Nothing is typed in: figures come from the ``figures`` stage, numbers from ``metrics/<m>.json``,
``metrics/eval/<m>.json`` (when present) and ``plots/<m>/history.csv``. Paths in the Markdown are
relative to ``reports/`` (it renders on GitHub). The report and its figures are also logged to MLflow
as a run named ``report``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from pathlib import Path

from vaelab import charts, plots, tracking
from vaelab.config import Params, flatten
from vaelab.data import load_split
from vaelab.files import write_atomic
from vaelab.figures import expected_kinds, model_label, save_figures
from vaelab.render import CLAIMS, Rows, Tables, fmt, render_html, render_markdown

log = logging.getLogger(__name__)
REPORTS = Path("reports")


class ReportError(RuntimeError):
    """An input of the report (metrics, history, figure) is missing or malformed."""


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; run `dvc repro` to produce it") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object of metrics")
    return data


def read_history(path: Path, column: str = "test_loss") -> tuple[list[int], list[float]]:
    """Epochs and one column of a training history CSV."""
    try:
        rows = list(csv.DictReader(path.open()))
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; run `dvc repro` to produce it") from None
    if not rows or column not in rows[0]:
        raise ReportError(f"{path}: expected a header with epoch and {column} and at least one row")
    return [int(r["epoch"]) for r in rows], [float(r[column]) for r in rows]


def metrics_table(per_model: dict[str, dict]) -> list[list[str]]:
    """Rows ``[metric, value per model...]`` over the union of flattened keys, first-seen order."""
    flat = {name: flatten(values) for name, values in per_model.items()}
    keys = list(dict.fromkeys(k for values in flat.values() for k in values))
    return [[k, *(fmt(flat[n].get(k)) for n in per_model)] for k in keys]


def figure_rows(params: Params) -> Rows:
    """(title, claim, [figure path relative to reports/ or None per model]) for each figure kind."""
    drawn = {name: expected_kinds(cfg) for name, cfg in params.models.items()}
    return [(title, claim, [f"figures/{n}/{kind}.png" if kind in drawn[n] else None for n in params.models])
            for kind, (title, claim) in CLAIMS.items()]


def metric_tables(names: list[str], root: Path) -> Tables:
    """The training metrics of every model, and the evaluation metrics of those that have them."""
    tables = {"Final metrics": ("metrics/<model>.json",
                                metrics_table({n: read_json(root / "metrics" / f"{n}.json") for n in names}))}
    evals = {n: root / "metrics" / "eval" / f"{n}.json" for n in names}
    if any(p.exists() for p in evals.values()):
        tables["Evaluation"] = ("metrics/eval/<model>.json", metrics_table(
            {n: read_json(p) if p.exists() else {} for n, p in evals.items()}))
    return tables


def write_report(params: Params, root: Path = Path(".")) -> Path:
    """Draw the cross-model figures, write report.md and report.html, log them to MLflow, then publish."""
    import mlflow

    names = list(params.models)
    labels = [model_label(n) for n in names]
    reports = root / REPORTS
    rows = figure_rows(params)
    for _, _, paths in rows:
        missing = [p for p in paths if p and not (reports / p).is_file()]
        if missing:
            raise ReportError(f"{reports / missing[0]}: missing; run `dvc repro` to draw the figures")
    tables = metric_tables(names, root)
    histories = {model_label(n): read_history(root / "plots" / n / "history.csv") for n in names}
    train = load_split(root / "data", "train", params.figures.data_grid ** 2)
    experiment_id = tracking.setup(params.mlflow.experiment)

    staging = Path(tempfile.mkdtemp(dir=root, prefix=".report-"))
    try:
        save_figures({"data": plots.data_grid(train.images, train.labels, params.figures.data_grid),
                      "test_loss": charts.loss_curves(histories)}, staging / "figures", params.figures.dpi)
        losses = "figures/test_loss.png"
        write_atomic(staging / "report.md", render_markdown(labels, rows, losses, tables))
        image = (lambda rel: ((staging / rel) if (staging / rel).exists() else (reports / rel)).read_bytes())
        write_atomic(staging / "report.html", render_html(labels, rows, losses, tables, image))
        tags = {k: v for k, v in tracking.run_tags("report", "report").items() if k != "model"}
        with mlflow.start_run(experiment_id=experiment_id, run_name="report", tags=tags):
            mlflow.log_params({"models": ",".join(names)})
            mlflow.log_artifacts(str(staging))
            for n in names:
                mlflow.log_artifacts(str(reports / "figures" / n), artifact_path=f"figures/{n}")
        published = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        for rel in published:
            os.chmod(staging / rel, 0o644)  # mkstemp makes owner-only files; reports are for everyone
            (reports / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, reports / rel)
    finally:
        for leftover in sorted(staging.rglob("*"), reverse=True):
            leftover.rmdir() if leftover.is_dir() else leftover.unlink()
        staging.rmdir()
    log.info("report: %s and %s written, logged to MLflow experiment %s", reports / "report.md",
             reports / "report.html", params.mlflow.experiment)
    return reports / "report.md"
