"""MLflow at the edges: where runs are recorded, and the few calls the stages make. This package is the one
place that imports mlflow (``pyfunc_model.py`` beside it is the MLflow Model's code); every call names its run explicitly (``MlflowClient``), so parallel workers
and later stages never log into the wrong run.

Lineage: a training run is tagged with the md5 of the checkpoint it produced (``vaelab.checkpoint_md5``).
The figures and evaluate stages hash the checkpoint they load and log to exactly the run with that
tag (:func:`run_for_checkpoint`); a checkpoint with no such run (e.g. pulled with ``dvc pull`` into a
clone with an empty store) gets a new run linked by the same tag, never someone else's run.

The default store is MLflow's own default, ``sqlite:///mlflow.db`` at the project root, which is
``$DVC_ROOT`` when DVC runs the stage. Queued experiments (``dvc exp run --queue``) run in temporary
copies under ``.dvc/tmp/exps/``, but DVC's queue sets ``DVC_ROOT`` to the parent repository (not the
copy), so they record into the project's store; experiments get an absolute artifact location under
the project root, and store creation is serialised with a file lock so parallel workers do not race
on a fresh SQLite schema. ``MLFLOW_TRACKING_URI`` overrides the store, e.g. for a shared server.

Each run is tagged with ``dvc.exp_name`` and ``dvc.changed_params`` (the params that differ from the
experiment's baseline commit) so a run in the MLflow UI can be matched to its ``dvc exp show`` row.
"""

from __future__ import annotations

import contextlib
import hashlib
import fcntl
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import yaml

from vaelab.errors import TrackingError

log = logging.getLogger(__name__)
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


def setup(experiment: str) -> str:
    """Point MLflow at the store, make sure ``experiment`` exists, and return its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

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
                                            tags={"mlflow.note.content": EXPERIMENT_NOTE})
        except MlflowException as err:
            # Parallel queued experiments against a fresh tracking server race to create it (the file lock
            # above covers only a local store): the loser uses the winner's.
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return mlflow.get_experiment_by_name(experiment).experiment_id


EXPERIMENT_NOTE = """vaelab: autoencoders and VAEs on MNIST with a 2-D latent, after the blog post *Data Compression and
generation with Variational Autoencoders*. One run per model and seed (`train@<model>` of the DVC pipeline),
tagged `model`, `seed`, `git.commit`, `dvc.exp_name` and `vaelab.checkpoint_md5`; its figures and
evaluation metrics (`eval.*`) are attached to that run. Trained models are registered as `vaelab-<model>`.
The study's report (every model side by side, the claims table) is the run named `report` and
`reports/report.md` in the repository."""


def ui_url(base: str, experiment: str) -> str:
    """The URL of ``experiment``'s runs table in the model-training view of the MLflow UI at ``base`` (MLflow 3
    otherwise opens on its GenAI overview); the experiments list if the store has no such experiment yet."""
    found = client().get_experiment_by_name(experiment)
    if found is None:
        return f"{base.rstrip('/')}/#/experiments?workflowType=machine_learning"
    return f"{base.rstrip('/')}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


# A SIGTERM or Ctrl-C raised inside a store call can leave its SQLite transaction open: the write lock is then
# still held when the stage marks its run KILLED, which fails with "database is locked" and leaves the run
# RUNNING (seen in the resume test). So while a call is in progress the stage's signal handler holds the
# interrupt back (hold_interrupt), and it is raised as soon as the call is done. A second signal is not held.
_calls_in_progress = 0
_held_interrupt: list[str] = []


def hold_interrupt(name: str) -> bool:
    """For a signal handler: True if a tracking call is in progress and interrupt ``name`` is held until it ends
    (then raised as KeyboardInterrupt); False if the handler should raise it now."""
    if _calls_in_progress and not _held_interrupt:
        _held_interrupt.append(name)
        return True
    return False


@contextlib.contextmanager
def recording(what: str) -> Iterator[None]:
    """Turn any failure of the tracking store inside the block into one TrackingError naming the URI; an
    interrupt that arrives meanwhile is raised when the block is done (see hold_interrupt)."""
    global _calls_in_progress
    _calls_in_progress += 1
    try:
        yield
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 - MLflow, SQLAlchemy and requests raise many types
        raise TrackingError(
            f"MLflow tracking at {tracking_uri()} failed while {what} ({type(err).__name__}: {err}); "
            "finished epochs are kept in checkpoints/: fix the store or server and re-run to resume"
        ) from err
    finally:
        _calls_in_progress -= 1
        if not _calls_in_progress and _held_interrupt:
            raise KeyboardInterrupt(_held_interrupt.pop())


@contextlib.contextmanager
def _ending(what: str, end: Any) -> Iterator[None]:
    """Call ``end(status)`` when the block ends: FINISHED, FAILED, or KILLED if interrupted. If ending fails too
    (the server is down), the original error is the one reported."""
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            with recording(f"marking {what} {status}"):
                end(status)
        except TrackingError as err:
            if status == "FINISHED":
                raise
            log.warning("%s", err)


def _existing(run_id: str | None, experiment_id: str) -> str | None:
    if run_id and not _active_in(run_id, experiment_id):  # e.g. the checkpoint's run was deleted
        log.warning("run %s of the checkpoint is not in experiment %s: starting a new run", run_id, experiment_id)
        return None
    return run_id


@contextlib.contextmanager
def tracked_run(name: str, experiment_id: str, run_id: str | None = None, tags: dict[str, str] | None = None
                ) -> Iterator[Any]:
    """Start (or resume) the run ``name``; end it FINISHED, FAILED, or KILLED if interrupted."""
    import mlflow

    with recording("starting the run"):
        run_id = _existing(run_id, experiment_id)
        run = mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=None if run_id else name,
                               tags=tags)
    with _ending("the run", mlflow.end_run):
        yield run


@contextlib.contextmanager
def tracked_runs(names: list[str], experiment_id: str, run_ids: list[str | None], tags: list[dict[str, str]]
                 ) -> Iterator[list[str]]:
    """Start (or resume) one run per name at once (seeds trained side by side), by explicit run ids; end
    them all as :func:`tracked_run` ends one."""
    ids: list[str] = []
    with recording("starting the runs"):
        for name, run_id, run_tags in zip(names, run_ids, tags, strict=True):
            run_id = _existing(run_id, experiment_id)
            if run_id:
                client().update_run(run_id, status="RUNNING")
            else:
                run_id = client().create_run(experiment_id, tags=run_tags, run_name=name).info.run_id
            ids.append(run_id)

    def end(status: str) -> None:
        for run_id in ids:
            client().set_terminated(run_id, status)

    with _ending("the runs", end):
        yield ids


def _active_in(run_id: str, experiment_id: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        info = MlflowClient().get_run(run_id).info
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return info.experiment_id == experiment_id and info.lifecycle_stage == "active"


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def changed_params(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The dotted params whose value differs from ``baseline`` (added keys included, removed ones not)."""
    from vaelab.config import flatten

    old = flatten(baseline)
    return {key: value for key, value in flatten(current).items() if key not in old or old[key] != value}


def _params_at(rev: str, cwd: Path) -> dict[str, Any] | None:
    try:
        out = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=cwd, capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return yaml.safe_load(out.stdout) or {}


def run_tags(model: str, stage: str, params_path: Path = Path("params.yaml")) -> dict[str, str]:
    """Tags that tie a run to its model, its DVC stage, its commit and (if any) its DVC experiment.

    In a DVC experiment the run also gets ``dvc.changed_params``: the params that differ from the
    baseline commit (``$DVC_EXP_BASELINE_REV``), e.g. ``models.vae_bce.beta=0.5``; every param is
    logged as an MLflow param anyway, this tag is what tells sweep runs apart at a glance.
    """
    tags = {"model": model, "dvc.stage": stage}
    commit = git_commit(project_root())
    if commit:
        tags["git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    baseline = os.environ.get("DVC_EXP_BASELINE_REV")
    if baseline:
        tags["dvc.baseline_rev"] = baseline
        old = _params_at(baseline, project_root())
        if old is not None and params_path.exists():
            diff = changed_params(old, yaml.safe_load(params_path.read_text()) or {})
            tags["dvc.changed_params"] = ",".join(f"{k}={v}" for k, v in sorted(diff.items())) or "(none)"
    return tags


def logged_steps(run_id: str, key: str) -> set[int]:
    """Steps already recorded for ``key``: a resumed run logs only the epochs that are missing."""
    from mlflow.tracking import MlflowClient

    return {m.step for m in MlflowClient().get_metric_history(run_id, key)}


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """Log numbers to ``run_id`` in one request (``step`` = epoch for per-epoch curves)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    with recording(f"logging metrics to run {run_id}"):
        client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_params(run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    with recording(f"logging params to run {run_id}"):
        client().log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def log_artifacts(run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    with recording(f"uploading artifacts to run {run_id}"):
        client().log_artifacts(run_id, str(folder), artifact_path=artifact_path)


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    with recording(f"tagging run {run_id}"):
        for key, value in tags.items():
            client().set_tag(run_id, key, value)


def log_dataset(run_id: str, images: Any, name: str, source: str, context: str) -> None:
    """Record a training or test split as an MLflow dataset input (digest of the exact pixels, size, source),
    so the runs table's Dataset column tells runs on different data apart."""
    import numpy as np
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.numpy_dataset import from_numpy

    pixels = np.ascontiguousarray(images.cpu().numpy())
    digest = hashlib.md5(pixels.tobytes()).hexdigest()[:16]
    dataset = from_numpy(pixels, source=HTTPDatasetSource(source), name=name, digest=digest)
    from mlflow.entities import DatasetInput, InputTag

    from mlflow.exceptions import MlflowException

    inputs = [DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])]
    with recording(f"logging dataset {name}"):
        try:
            client().log_inputs(run_id, datasets=inputs)
        except MlflowException as err:
            # The SQL store inserts a dataset it has not seen, keyed by (experiment, name, digest). Parallel queued
            # experiments on one server race to insert the same one, and the loser gets a unique-key violation.
            # The dataset now exists, so the second try only links it to this run.
            if "unique" not in str(err).lower():
                raise
            client().log_inputs(run_id, datasets=inputs)


def log_model(run_id: str, checkpoint: Path, example: Any, registered_name: str, version_tags: dict[str, str]) -> str:
    """Log a checkpoint to ``run_id`` as an MLflow Model (signature and input example from ``example``) and
    register it as a new version of ``registered_name``; returns the version."""
    import mlflow
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import infer_signature

    import vaelab

    with recording(f"logging the MLflow Model of run {run_id}"):
        x = np.asarray(example, dtype=np.float32)
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            # Models from code (pyfunc_model.py), not a pickled object: loading the model runs no pickle.
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"checkpoint": str(checkpoint)},
                code_paths=[str(Path(vaelab.__file__).parent)], input_example=x,
                signature=infer_signature(x, np.zeros((len(x), 784), dtype=np.float32)),
                pip_requirements=[f"torch=={_version('torch')}", f"mlflow=={_version('mlflow')}", "numpy"])
        version = mlflow.register_model(info.model_uri, registered_name, tags=version_tags)
        return version.version


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package).split("+")[0]


def run_for_checkpoint(experiment_id: str, model: str, seed: int, md5: str, stage: str) -> str:
    """The training run that wrote the checkpoint with this md5, or a new run linked to it by tags.

    Among several (e.g. ``dvc repro -f`` re-trained the same weights), the newest finished one of the
    same DVC experiment wins. A new run is named ``<model>/seed<seed>`` and tagged ``vaelab.lineage =
    checkpoint-only``: it says the checkpoint came from elsewhere (a DVC remote), not from this store.
    """
    with recording("finding the training run of the checkpoint"):
        runs = client().search_runs(
            [experiment_id], filter_string=f"tags.`vaelab.checkpoint_md5` = '{md5}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=50)
    exp_name = os.environ.get("DVC_EXP_NAME")
    same_exp = [r for r in runs if r.data.tags.get("dvc.exp_name") == exp_name]
    if same_exp or runs:
        return (same_exp or runs)[0].info.run_id
    log.warning("%s seed %d: no run in %s wrote checkpoint %s; recording into a new run linked by its md5",
                model, seed, tracking_uri(), md5)
    tags = {**run_tags(model, stage), "seed": str(seed), "vaelab.checkpoint_md5": md5, "vaelab.lineage": "checkpoint-only"}
    with recording("creating a run for a pulled checkpoint"):
        run = client().create_run(experiment_id, tags=tags, run_name=f"{model}/seed{seed}")
        client().set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
