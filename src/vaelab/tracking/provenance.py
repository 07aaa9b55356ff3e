"""Where a run's inputs came from: the git commit, the params that differ from a DVC experiment's baseline,
the tags that tie a run to its model, stage, commit and experiment (``run_tags``), and the digests of the
datasets it trained and tested on (``log_dataset``).

Each run is tagged with ``dvc.exp_name`` and ``dvc.changed_params`` (the params that differ from the
experiment's baseline commit) so a run in the MLflow UI can be matched to its ``dvc exp show`` row.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from vaelab.tracking.runs import recording
from vaelab.tracking.store import client, project_root
from vaelab.tracking.switch import unless_off


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def changed_params(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The dotted params whose value differs from ``baseline`` (added keys included, removed ones not)."""
    from vaelab.core.config import flatten

    old = flatten(baseline)
    return {key: value for key, value in flatten(current).items() if key not in old or old[key] != value}


def _params_at(rev: str, cwd: Path) -> dict[str, Any] | None:
    try:
        out = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=cwd, capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return yaml.safe_load(out.stdout) or {}


def in_experiment() -> bool:
    """Whether this stage runs inside a DVC experiment (``dvc exp run`` sets ``$DVC_EXP_NAME`` for its stages)."""
    return bool(os.environ.get("DVC_EXP_NAME"))


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
    if in_experiment():
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    baseline = os.environ.get("DVC_EXP_BASELINE_REV")
    if baseline:
        tags["dvc.baseline_rev"] = baseline
        old = _params_at(baseline, project_root())
        if old is not None and params_path.exists():
            diff = changed_params(old, yaml.safe_load(params_path.read_text()) or {})
            tags["dvc.changed_params"] = ",".join(f"{k}={v}" for k, v in sorted(diff.items())) or "(none)"
    return tags


@unless_off()
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
