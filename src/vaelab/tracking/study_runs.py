"""The runs of the studies beside the models: the quadrant task's run (``quadrants``), the SBI study's runs (one
parent per task) and the report's run (in the report's own experiment). Each opens its store when made (a stage
fails fast if the store is down) and records when told; nothing it does changes what a stage writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaelab.core.config import Params, flatten
from vaelab.core.device import resolve_device
from vaelab.core.layout import Layout
from vaelab.tracking.provenance import run_tags
from vaelab.tracking.runs import log_artifacts, log_metrics, log_params, tracked_run, tracked_runs
from vaelab.core.errors import TrackingError
from vaelab.tracking.store import REPORT_NOTE, client, report_experiment, setup, tracking_uri


def _numbers(tree: dict) -> dict[str, float]:
    """The numeric leaves of ``tree`` as dotted keys (bools and strings left out): what MLflow records."""
    return {k: float(v) for k, v in flatten(tree).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class QuadrantsRun:
    """The run ``quadrants``: its settings, each network's per-epoch training loss, the NLLs and the figures."""

    def __init__(self, params: Params) -> None:
        self.experiment_id, self.params = setup(params.mlflow.experiment), params

    def record(self, cfg: Any, results: list[Any], metrics: dict, staged: Path) -> None:
        seed = self.params.seeds[0]
        tags = {**run_tags("quadrants", "quadrants"), "seed": str(seed)}
        with tracked_run("quadrants", self.experiment_id, tags=tags) as run:
            rid = run.info.run_id
            log_params(rid, {**{f"quadrants.{k}": v for k, v in flatten(cfg).items()}, "seed": seed,
                             "train_size": self.params.data.train_size,
                             "device": str(resolve_device(self.params.device))})
            for r in results:
                for net, history in (("baseline", r.baseline_history), ("cvae", r.cvae_history)):
                    for epoch in history:
                        log_metrics(rid, {f"given_{r.given}.{net}.train_{k}": v for k, v in epoch.items()
                                          if k != "epoch"}, epoch["epoch"])
            log_metrics(rid, _numbers({k: v for k, v in metrics.items() if k.startswith("given_")}))
            at = Layout(staged)
            log_artifacts(rid, at.figures("quadrants"), "figures")
            log_artifacts(rid, at.quadrants_metrics.parent, "metrics")


class SBIRuns:
    """The SBI study of one task: a parent run ``sbi-<task>`` (the protocol, each estimator's mean C2ST per budget,
    the pair plot and the metrics file) with one child per estimator and budget (its per-epoch losses, its C2ST per
    observation as steps, their mean, its training time)."""

    def __init__(self, params: Params, task: str) -> None:
        self.experiment_id, self.params, self.task = setup(params.mlflow.experiment), params, task

    def record(self, cfg: Any, scored: list[Any], doc: dict, figures: Path) -> None:
        tags = {**run_tags(f"sbi-{self.task}", f"sbi@{self.task}"), "sbi.task": self.task}
        with tracked_run(f"sbi-{self.task}", self.experiment_id, tags=tags) as parent:
            pid = parent.info.run_id
            log_params(pid, {**{f"sbi.{k}": v for k, v in flatten(cfg).items()}, "task": self.task})
            means = {(s.estimator, s.budget): doc["estimators"][s.estimator][str(s.budget)]["mean"] for s in scored}
            log_metrics(pid, {f"{e}.{b}.c2st_mean": v for (e, b), v in means.items()})
            log_artifacts(pid, figures, "figures")
            children = [f"sbi-{self.task}-{s.estimator}-{s.budget}" for s in scored]
            child_tags = [{**tags, "mlflow.parentRunId": pid, "sbi.estimator": s.estimator,
                           "sbi.budget": str(s.budget)} for s in scored]
            with tracked_runs(children, self.experiment_id, [None] * len(scored), child_tags) as ids:
                for rid, s in zip(ids, scored):
                    log_params(rid, {"estimator": s.estimator, "simulations": s.budget, "task": self.task})
                    for epoch, losses in enumerate(s.history, start=1):
                        log_metrics(rid, losses, epoch)
                    for k, value in s.c2st.items():
                        log_metrics(rid, {"c2st": value}, k)   # the step is sbibm's observation number
                    log_metrics(rid, {"c2st_mean": means[(s.estimator, s.budget)],
                                      **{f"seconds.{part}": v for part, v in s.seconds.items()}})


class ReportRun:
    """One run per report in the report's own experiment: report.html and claims.json, and what the report covered."""

    def __init__(self, params: Params) -> None:
        self.experiment_id = setup(report_experiment(params.mlflow.experiment), REPORT_NOTE)

    def record(self, params: dict[str, str], staged: Path) -> None:
        tags = {k: v for k, v in run_tags("report", "report").items() if k != "model"}
        with tracked_run("report", self.experiment_id, tags=tags) as run:
            log_params(run.info.run_id, params)
            log_artifacts(run.info.run_id, Layout(staged).report_html)
            log_artifacts(run.info.run_id, Layout(staged).claims)


def download_report(experiment: str, exp_name: str, dest: Path) -> Path:
    """The report.html of the newest report run of DVC experiment ``exp_name`` (tag ``dvc.exp_name``), downloaded
    into folder ``dest``; a TrackingError when there is none."""
    import mlflow

    found = client().get_experiment_by_name(report_experiment(experiment))
    runs = client().search_runs([found.experiment_id], f"tags.`dvc.exp_name` = '{exp_name}'",
                                order_by=["attributes.start_time DESC"], max_results=1) if found else []
    if not runs:
        raise TrackingError(f"no report run of DVC experiment {exp_name!r} in experiment "
                            f"{report_experiment(experiment)!r} of {tracking_uri()}")
    dest.mkdir(parents=True, exist_ok=True)
    name = Layout(Path(".")).report_html.name
    return Path(mlflow.artifacts.download_artifacts(run_id=runs[0].info.run_id, artifact_path=name, dst_path=str(dest),
                                                    tracking_uri=tracking_uri()))
