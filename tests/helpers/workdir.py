"""Helpers for tests that run the real train stage in a scratch folder (not a git/DVC copy).

A work dir holds ``params.yaml`` and a ``data`` link to the session's verified MNIST folder; the
stage runs there as ``python <repo>/stages/train.py`` with this worktree's ``src`` on the path,
so its outputs, ``checkpoints/`` and the default ``mlflow.db`` all land in the work dir.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import REPO, run, subprocess_env, without_model_seeds

SMALL = {"device": "cpu", "data__train_size": 1000, "data__test_size": 1000, "train__epochs": 2, "seeds": [1]}


def make_workdir(path: Path, mnist_root: Path, store: Path | None = None, **updates) -> Path:
    """``path`` with params.yaml (the project's, with SMALL and ``updates`` applied), data/, and a copy of the
    empty MLflow store ``store`` as its mlflow.db (the ``empty_store`` fixture; None: the stage creates one)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").symlink_to(mnist_root, target_is_directory=True)
    if store is not None:
        shutil.copy2(store, path / "mlflow.db")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = without_model_seeds(params["models"])   # every model trains with SMALL's seeds
    for dotted, value in {**SMALL, **updates}.items():
        node = params
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def train_cmd(model: str, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "stages" / "train.py"), "--model", model, *extra]


def stage_env(**extra: str) -> dict[str, str]:
    return subprocess_env(PYTHONPATH=str(REPO / "src"), **extra)


def train(workdir: Path, model: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run the train stage for ``model`` in ``workdir`` to completion."""
    return run(train_cmd(model), workdir, check=check, PYTHONPATH=str(REPO / "src"), **env)


def start_train(workdir: Path, model: str, log_name: str = "stage.log", **env: str) -> subprocess.Popen:
    """Start the train stage in the background (its output goes to ``workdir/<log_name>``)."""
    log = (workdir / log_name).open("w")
    return subprocess.Popen(train_cmd(model), cwd=workdir, env=stage_env(**env), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def mlflow_runs(workdir: Path, uri: str | None = None, experiment: str = "vaelab", role: str | None = "seed") -> list:
    """The runs of ``experiment`` in the work dir's default store (or ``uri``): a model's seed runs (tag
    ``vaelab.run = seed``), its parent runs (``role="model"``), or all (``role=None``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = [] if exp is None else client.search_runs([exp.experiment_id])
    return [r for r in runs if role is None or r.data.tags.get("vaelab.run") == role]


def epoch_steps(run, key: str = "epoch/loss/test", uri: str | None = None, workdir: Path | None = None) -> list[int]:
    """The steps recorded for ``key`` in ``run``, in order (duplicates kept)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or f"sqlite:///{workdir / 'mlflow.db'}")
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
