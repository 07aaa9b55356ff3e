"""Where runs are recorded: the store's URI, the file lock around creating it, the HTTP preflight, ``setup``
(the experiment), the explicit ``MlflowClient`` every call uses, and the UI's URL.

The default store is MLflow's own default, ``sqlite:///mlflow.db`` at the project root, which is
``$DVC_ROOT`` when DVC runs the stage. Queued experiments (``dvc exp run --queue``) run in temporary
copies under ``.dvc/tmp/exps/``, but DVC's queue sets ``DVC_ROOT`` to the parent repository (not the
copy), so they record into the project's store; experiments get an absolute artifact location under
the project root, and store creation is serialised with a file lock so parallel workers do not race
on a fresh SQLite schema. ``MLFLOW_TRACKING_URI`` overrides the store, e.g. for a shared server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from vaelab.core.errors import TrackingError
from vaelab.tracking.switch import unless_off

PREFLIGHT_TIMEOUT_S = 5.0
# MLflow's HTTP client retries 7 times with exponential backoff (minutes) and waits 120 s per request;
# a server that dies mid-run should fail the stage in seconds instead. The user's settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_reachable(uri: str, timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Fail fast, before any training, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (an error status still means a live server, e.g. behind a proxy)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server {uri} did not answer within {timeout:.0f} s ({reason}); "
            "start it, or unset MLFLOW_TRACKING_URI to record into the local mlflow.db"
        ) from None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation and experiment creation across processes (parallel DVC workers)."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@unless_off("off")
def setup(experiment: str, note: str | None = None) -> str:
    """Point MLflow at the store, make sure ``experiment`` exists (described by ``note``, by default the study's
    :data:`EXPERIMENT_NOTE`), and return its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from vaelab.tracking.runs import recording  # here, not at the top: runs imports this module

    uri = tracking_uri()
    check_reachable(uri)
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri), recording("opening the experiment"):
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        # A local store gets an absolute artifact root under the project, so that an experiment first
        # created from a temporary copy (`dvc exp run --queue`) does not point into a deleted folder.
        location = (project_root() / "mlruns").as_uri() if _sqlite_path(uri) else None
        try:
            return mlflow.create_experiment(experiment, artifact_location=location,
                                            tags={"mlflow.note.content": note or EXPERIMENT_NOTE})
        except MlflowException as err:
            # Parallel queued experiments against a fresh tracking server race to create it (the file lock
            # above covers only a local store): the loser uses the winner's.
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return mlflow.get_experiment_by_name(experiment).experiment_id


EXPERIMENT_NOTE = """vaelab: autoencoders and VAEs on MNIST with a 2-D latent, after the blog post *Data Compression and
generation with Variational Autoencoders*. One parent run per model (`train@<model>` of the DVC pipeline) with
one nested run per seed (`<model>/seed<k>`), tagged `model`, `seed`, `git.commit`, `dvc.exp_name` and
`vaelab.checkpoint_md5`. Metrics are grouped by `/`: per-epoch `epoch/<term>/train`, `epoch/<term>/test` and
`epoch/decoder/*`, and the evaluation's `eval/*`; a parent run holds their mean over seeds and
`seeds_ci95/<key>`, the half-width of the 95% Student-t interval. Figures of the first seed are on its run and the parent's. Trained models are registered
as `vaelab-<model>` with aliases `seed<k>` and `champion`. The study's report (every model side by side, the
claims table) is in the experiment `<this experiment>-report` and `reports/report.md` in the repository."""


def report_experiment(experiment: str) -> str:
    """The experiment of the report's runs, apart from the training runs so the runs table holds models only."""
    return f"{experiment}-report"


REPORT_NOTE = """vaelab's report: one run per run of the DVC stage `report`, holding `report.html` (self-contained: every
model side by side, the claims table) and `claims.json`. The training runs are in the study's own experiment."""


def ui_url(base: str, experiment: str) -> str:
    """The URL of ``experiment``'s runs table in the model-training view of the MLflow UI at ``base`` (MLflow 3
    otherwise opens on its GenAI overview); the experiments list if the store has no such experiment yet."""
    found = client().get_experiment_by_name(experiment)
    if found is None:
        return f"{base.rstrip('/')}/#/experiments?workflowType=machine_learning"
    return f"{base.rstrip('/')}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())
