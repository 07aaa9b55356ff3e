"""MLflow at the edges: where runs are recorded, and the few calls the stages make. This package is the one
place that imports mlflow (``pyfunc_model.py`` beside it is the MLflow Model's code); every call names its run explicitly (``MlflowClient``), so parallel workers
and later stages never log into the wrong run. mlflow itself is imported only inside the calls, when a run is
recorded, so that a stage starts fast.

The modules, by concern: ``store`` (where runs are recorded: URI, file lock, preflight, setup, client),
``runs`` (the signal hold, starting and ending runs, logging to them), ``provenance`` (git, the params diff,
run tags, dataset digests) and ``registry`` (the model registry and checkpoint lineage). Callers use the
names below as ``tracking.<name>``.
"""

from __future__ import annotations

from vaelab.tracking.provenance import changed_params, git_commit, log_dataset, run_tags
from vaelab.tracking.registry import log_model, run_for_checkpoint
from vaelab.tracking.runs import (hold_interrupt, log_artifacts, log_metrics, log_params, logged_steps, recording,
                                  set_tags, tracked_run, tracked_runs)
from vaelab.tracking.store import (EXPERIMENT_NOTE, HTTP_DEFAULTS, PREFLIGHT_TIMEOUT_S, check_reachable, client,
                                   project_root, setup, tracking_uri, ui_url)

__all__ = [
    "EXPERIMENT_NOTE", "HTTP_DEFAULTS", "PREFLIGHT_TIMEOUT_S", "changed_params", "check_reachable", "client",
    "git_commit", "hold_interrupt", "log_artifacts", "log_dataset", "log_metrics", "log_model", "log_params",
    "logged_steps", "project_root", "recording", "run_for_checkpoint", "run_tags", "set_tags", "setup",
    "tracked_run", "tracked_runs", "tracking_uri", "ui_url",
]
