"""MLflow at the edges: where runs are recorded, and the few calls the stages make. This package is the one
place that imports mlflow (``pyfunc_model.py`` beside it is the MLflow Model's code); every call names its run explicitly (``MlflowClient``), so parallel workers
and later stages never log into the wrong run. mlflow itself is imported only inside the calls, when a run is
recorded, so that a stage starts fast.

The modules, by concern: ``keys`` (metric names: ``epoch/loss/test``, ``eval/...``, a parent's summaries),
``store`` (where runs are recorded: URI, file lock, preflight, setup, client),
``runs`` (the signal hold, starting and ending runs, logging to them), ``provenance`` (git, the params diff,
run tags, dataset digests) and ``registry`` (the model registry and checkpoint lineage), ``model_runs`` (a model's
run tree: the parent run and its seeds) and ``switch`` (``VAELAB_TRACKING=off``: nothing recorded). Callers use the
names below as ``tracking.<name>``.
"""

from __future__ import annotations

from vaelab.tracking.keys import CI_PREFIX, EPOCH_KEY, across_seeds, epoch_metrics, eval_metrics
from vaelab.tracking.model_runs import CheckpointRuns, SeedRuns, model_runs
from vaelab.tracking.provenance import changed_params, git_commit, log_dataset, run_tags
from vaelab.tracking.registry import MODEL_ID_TAG, describe_registered, log_model, run_for_checkpoint
from vaelab.tracking.runs import (hold_interrupt, log_artifacts, log_metrics, log_params, logged_dataset, logged_steps,
                                  recording, run_tag, set_tags, tracked_run, tracked_runs)
from vaelab.tracking.store import (EXPERIMENT_NOTE, HTTP_DEFAULTS, PREFLIGHT_TIMEOUT_S, REPORT_NOTE, check_reachable,
                                   client, project_root, report_experiment, setup, tracking_uri, ui_url)
from vaelab.tracking.study_runs import QuadrantsRun, ReportRun, SBIRuns, download_report

__all__ = [
    "CI_PREFIX", "EPOCH_KEY", "EXPERIMENT_NOTE", "HTTP_DEFAULTS", "MODEL_ID_TAG", "PREFLIGHT_TIMEOUT_S", "QuadrantsRun",
    "REPORT_NOTE", "ReportRun", "SBIRuns", "download_report",
    "CheckpointRuns", "SeedRuns", "across_seeds", "changed_params", "check_reachable", "client", "describe_registered", "epoch_metrics",
    "eval_metrics", "git_commit", "hold_interrupt", "log_artifacts", "log_dataset", "log_metrics", "log_model",
    "log_params", "logged_dataset", "logged_steps", "model_runs", "project_root", "recording", "report_experiment",
    "run_for_checkpoint", "run_tag", "run_tags", "set_tags", "setup", "tracked_run", "tracked_runs", "tracking_uri",
    "ui_url",
]
