"""The report as files: its inputs read from the other stages' outputs (figures, metrics, histories; nothing is typed
in), the cross-model figures drawn, and reports/report.md, reports/report.html, plots/histories.csv and
metrics/claims.json written into a staging folder. :mod:`vaelab.report.sections` lays out the blocks and
:mod:`vaelab.report.render` renders them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from vaelab import models
from vaelab.core.config import Params
from vaelab.core.errors import ReportError
from vaelab.core.files import write_atomic, write_json
from vaelab.core.layout import Layout
from vaelab.data.mnist import load_split
from vaelab.report.render import render_html, render_markdown
from vaelab.report.sections import Inputs, report_blocks
from vaelab.studies import claims
from vaelab.viz import charts, images
from vaelab.viz.images import save_figures
from vaelab.viz.model_figures import KINDS, model_label

TITLE = "Autoencoder vs VAEs on MNIST"


def read_json(path: Path) -> dict:
    """A metrics file of another stage, as a JSON object (a ReportError names the file otherwise)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; run `dvc repro` to produce it") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object of metrics")
    return data


def per_seed(path: Path, seeds: list[int], pick=lambda v: v) -> dict[int, dict]:
    """Each seed's entry (``seed<k>``) of a per-seed metrics file."""
    data = read_json(path)
    missing = [s for s in seeds if f"seed{s}" not in data]
    if missing:
        raise ReportError(f"{path}: no results for seed {missing[0]} (key 'seed{missing[0]}'); "
                          "run `dvc repro` after changing `seeds`")
    return {s: pick(data[f"seed{s}"]) for s in seeds}


def history_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a training history CSV, as written, checked to hold epoch and ``columns``."""
    try:
        rows = list(csv.DictReader(path.open()))
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; run `dvc repro` to produce it") from None
    if not rows or not {"epoch", *columns} <= set(rows[0]):
        raise ReportError(f"{path}: expected a header with epoch, {', '.join(columns)} and at least one row")
    return rows


def read_history(path: Path, column: str = "test_loss") -> tuple[list[int], list[float]]:
    """Epochs and one column of a training history CSV."""
    rows = history_rows(path, (column,))
    return [int(r["epoch"]) for r in rows], [float(r[column]) for r in rows]


def read_inputs(params: Params, root: Path) -> Inputs:
    """Everything the report shows, read from the other stages' outputs (a ReportError names what is missing)."""
    names, at = list(params.models), Layout(root)
    seeds = {m: params.seeds_of(m) for m in names}
    figures = {}
    for m in names:
        folder = at.figures(m)
        figures[m] = [k for k in KINDS if (folder / f"{k}.png").is_file()]
        if not figures[m]:
            raise ReportError(f"{folder}: no figures; run `dvc repro figures@{m}`")
    train = {m: per_seed(at.train_metrics(m), seeds[m],
                         lambda v: {"train": v["train"], "test": v["test"]}) for m in names}
    evals = {m: per_seed(at.eval_metrics(m), seeds[m]) for m in names}
    verdicts = claims.judge_all(params.claims, evals)
    forks = [{role: claims.alternatives(spec, evals, role) for role in ("model", "baseline")} for spec in params.claims]
    robust = [claims.robustness(spec, evals) for spec in params.claims]
    judge = at.judge_metrics
    post = {m: text for m, text in params.report.post_ae.items() if m in params.models}
    inference = read_json(at.inference_metrics) if params.inference.models else {}
    fixed = tuple(n for n in names if models.fixed_scale(models.spec_of(params, n)))
    quadrants = read_json(at.quadrants_metrics) if params.quadrants else {}
    image_sets = {m: read_json(at.eval_metrics(m)).get("image_sets", {}) for m in names}
    baselines = read_json(at.baselines_metrics)
    return Inputs(names, seeds, figures, train, evals, verdicts, image_sets, forks,
                  read_json(judge).get("test_accuracy") if judge.exists() else None, post, inference,
                  "study/sigma.png" if sigma_histories(params, root) else None, fixed, quadrants, baselines,
                  read_json(at.references_metrics),
                  read_json(at.collapse_metrics) if set(params.collapse.models) & set(params.models) else {},
                  read_json(at.sweep_report("tuning")), robust,
                  {k: getattr(params.evaluate, k) for k in ("iwae_samples", "binarized_iwae_samples")},
                  {task: read_json(at.sbi_metrics(task)) for task in params.sbi.tasks})


PLOTTED = ("test_loss", "test_mse")  # the history columns `dvc plots` draws (every model's history has them)


def all_histories_csv(params: Params, root: Path) -> str:
    """Every model's and seed's history in one long CSV: ``run`` (``<model>/seed<k>``), ``model``, ``seed``,
    ``epoch`` and the :data:`PLOTTED` columns, values as the histories wrote them. DVC takes no glob in a plot's
    ``y:``, so one file, drawn one line per run (``.dvc/plots/runs.json``), is what lets a new model or seed
    appear in `dvc plots` with no edit of dvc.yaml."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "model", "seed", "epoch", *PLOTTED])
    for m in params.models:
        for s in params.seeds_of(m):
            rows = history_rows(Layout(root).history(m, s), PLOTTED)
            writer.writerows([f"{m}/seed{s}", m, s, r["epoch"], *(r[c] for c in PLOTTED)] for r in rows)
    return out.getvalue()


def sigma_histories(params: Params, root: Path) -> dict[str, tuple[list[int], list[float]]]:
    """σ per epoch (first seed) of every model whose history records one (calibrated Gaussian decoders)."""
    out = {}
    for m in params.models:
        path = Layout(root).history(m, params.seeds_of(m)[0])
        if path.exists() and "sigma" in path.read_text().splitlines()[0].split(","):
            out[model_label(m)] = read_history(path, "sigma")
    return out


def write(params: Params, inputs: Inputs, root: Path, staged: Path) -> None:
    """Draw the cross-model figures and write report.md, report.html, the histories and claims.json into
    ``staged`` (laid out as the project)."""
    histories = {model_label(m): read_history(Layout(root).history(m, params.seeds_of(m)[0])) for m in inputs.models}
    train = load_split(root / "data", "train", params.figures.data_grid ** 2)
    blocks = report_blocks(inputs)
    reports = staged / "reports"
    figs = {"data": images.data_grid(train.images, train.labels, params.figures.data_grid),
            "test_loss": charts.loss_curves(histories, "Test loss per epoch (first seed; each model's own loss)")}
    sigmas = sigma_histories(params, root)
    if sigmas:
        figs["sigma"] = charts.loss_curves(sigmas, "Decoder σ per epoch (first seed)", ylabel="decoder σ")
    save_figures(figs, reports / "study", params.figures.dpi)
    write_atomic(reports / "report.md", render_markdown(TITLE, blocks))
    image = lambda rel: ((reports / rel) if (reports / rel).exists() else (root / "reports" / rel)).read_bytes()
    write_atomic(reports / "report.html", render_html(TITLE, blocks, image))
    write_atomic(Layout(staged).all_histories, all_histories_csv(params, root))
    write_json(Layout(staged).claims, claims.claims_table(inputs.verdicts, inputs.forks, inputs.robust))
