"""A learning rate that really diverges stops training: clear message, FAILED run, no model output."""

from __future__ import annotations

import pytest

from pathlib import Path

from helpers.workdir import make_workdir, mlflow_runs, train

pytestmark = pytest.mark.slow  # stage programs and servers: the slow tier


def test_diverging_lr_fails_the_stage_and_the_run_and_leaves_no_model(tmp_path: Path, mnist_root: Path,
                                                                     empty_store: Path) -> None:
    # lr = 1e6 makes vae_mse's loss NaN at the second batch (checked: 1e2 already does).
    workdir = make_workdir(tmp_path / "w", mnist_root, empty_store, train__lr=1e6, data__train_size=600)
    stale = workdir / "models" / "vae_mse" / "seed1" / "model.pt"  # an earlier result must not survive
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier model")

    proc = train(workdir, "vae_mse", check=False)

    assert proc.returncode == 1, proc.stderr
    # The loss is read once per epoch (no per-step host sync), so the epoch, not the batch, is named.
    assert "train@vae_mse failed: vae_mse/seed1: non-finite losses" in proc.stderr and "at epoch 1" in proc.stderr
    assert "lower train.lr" in proc.stderr
    (run,) = mlflow_runs(workdir)
    assert run.info.status == "FAILED"
    assert run.data.tags["model"] == "vae_mse"
    assert not (workdir / "metrics" / "train" / "vae_mse.json").exists()
    assert not (workdir / "plots" / "history" / "vae_mse").exists()
    assert not list(workdir.glob(".train-*"))  # no staging leftovers
    assert not stale.exists()  # as under DVC, which removes a stage's outputs before running it
