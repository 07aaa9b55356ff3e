"""Runs and what the stages log to them: the signal hold shared with ``vaelab.pipeline.stage`` (``hold_interrupt``,
``recording``), starting and ending runs (``tracked_run``, ``tracked_runs``), and logging metrics, params,
artifacts and tags by explicit run id (``logged_steps`` tells a resumed run which epochs it has), and reading
back a run's tags and datasets.

A model is one parent run (``<model>``) with one nested run per seed (``<model>/seed<k>``, tagged
``mlflow.parentRunId``): the train stage starts both with :func:`tracked_runs`."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Iterator

from vaelab.core.errors import TrackingError
from vaelab.tracking.store import client, tracking_uri
from vaelab.tracking.switch import OFF_PREFIX, empty_set, no_run, no_runs, unless_off, unless_off_context

log = logging.getLogger("vaelab.tracking")


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
    if run_id and run_id.startswith(OFF_PREFIX):  # recorded while recording was off (VAELAB_TRACKING=off): no run
        return None
    if run_id and not _active_in(run_id, experiment_id):  # e.g. the checkpoint's run was deleted
        log.warning("run %s of the checkpoint is not in experiment %s: starting a new run", run_id, experiment_id)
        return None
    return run_id


@unless_off_context(no_run)
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


@unless_off_context(no_runs)
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


@unless_off(empty_set)
def logged_steps(run_id: str, key: str) -> set[int]:
    """Steps already recorded for ``key``: a resumed run logs only the epochs that are missing."""
    from mlflow.tracking import MlflowClient

    return {m.step for m in MlflowClient().get_metric_history(run_id, key)}


@unless_off()
def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0, model_id: str | None = None,
                dataset: tuple[str, str] | None = None) -> None:
    """Log numbers to ``run_id`` in one request (``step`` = epoch for per-epoch curves). With ``model_id`` (an
    MLflow 3 logged model) and ``dataset`` (its name and digest) they are also that model's metrics on that
    dataset: the logged model's page lists them."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    name, digest = dataset or (None, None)
    with recording(f"logging metrics to run {run_id}"):
        client().log_batch(run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id, dataset_name=name,
                                                   dataset_digest=digest) for k, v in metrics.items()])


@unless_off()
def log_params(run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    with recording(f"logging params to run {run_id}"):
        client().log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


@unless_off()
def log_artifacts(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    """Upload a folder's files, or one file, to ``run_id`` (under ``artifact_path``)."""
    with recording(f"uploading artifacts to run {run_id}"):
        if path.is_dir():
            client().log_artifacts(run_id, str(path), artifact_path=artifact_path)
        else:
            client().log_artifact(run_id, str(path), artifact_path=artifact_path)


@unless_off()
def run_tag(run_id: str, key: str) -> str | None:
    """One tag of ``run_id``, e.g. ``mlflow.parentRunId`` (the model's run of a seed run), or None."""
    with recording(f"reading run {run_id}"):
        return client().get_run(run_id).data.tags.get(key)


@unless_off()
def logged_dataset(run_id: str, context: str) -> tuple[str, str] | None:
    """The name and digest of the dataset ``run_id`` logged with ``context`` (e.g. ``testing``), or None."""
    with recording(f"reading the datasets of run {run_id}"):
        inputs = client().get_run(run_id).inputs
    for d in inputs.dataset_inputs if inputs else []:
        if any(t.key == "mlflow.data.context" and t.value == context for t in d.tags):
            return d.dataset.name, d.dataset.digest
    return None


@unless_off()
def set_tags(run_id: str, tags: dict[str, str]) -> None:
    with recording(f"tagging run {run_id}"):
        for key, value in tags.items():
            client().set_tag(run_id, key, value)
