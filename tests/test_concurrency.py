"""Trainings started together on a fresh default store (as parallel `dvc exp` workers do) all succeed.

The usual failure is the race to create MLflow's schema in a new mlflow.db ("table ... already
exists", seen 2 times in 3 without tracking.setup's file lock) or "database is locked" later on.
"""

from __future__ import annotations

import pytest

from pathlib import Path

from helpers.workdir import epoch_steps, make_workdir, mlflow_runs, start_train

pytestmark = pytest.mark.slow  # stage programs and servers: the slow tier

MODELS = ("ae", "vae_mse", "vae_bce")


def test_parallel_trainings_share_a_fresh_sqlite_store(tmp_path: Path, mnist_root: Path) -> None:
    workdir = make_workdir(tmp_path / "w", mnist_root, data__train_size=600)
    assert not (workdir / "mlflow.db").exists()
    procs = {name: start_train(workdir, name, log_name=f"{name}.log") for name in MODELS}

    codes = {name: proc.wait(timeout=600) for name, proc in procs.items()}

    texts = {name: (workdir / f"{name}.log").read_text() for name in MODELS}
    assert codes == dict.fromkeys(MODELS, 0), texts
    assert not any("locked" in t or "already exists" in t for t in texts.values()), texts
    runs = mlflow_runs(workdir)
    assert sorted(r.data.tags["model"] for r in runs) == sorted(MODELS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert epoch_steps(run, workdir=workdir) == [1, 2]
        assert epoch_steps(run, "epoch/loss/train", workdir=workdir) == [1, 2]
    for name in MODELS:
        assert (workdir / "models" / name / "seed1" / "model.pt").exists()
