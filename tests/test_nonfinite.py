"""A learning rate that really diverges stops training: clear message, FAILED run, no model output."""

from __future__ import annotations

from pathlib import Path

from workdir import make_workdir, mlflow_runs, train


def test_diverging_lr_fails_the_stage_and_the_run_and_leaves_no_model(tmp_path: Path, mnist_root: Path) -> None:
    # lr = 1e6 makes vae_mse's loss NaN at the second batch (checked: 1e2 already does).
    workdir = make_workdir(tmp_path / "w", mnist_root, train__lr=1e6, data__train_size=600)
    stale = workdir / "models" / "vae_mse" / "model.pt"  # an earlier result must not survive
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier model")

    proc = train(workdir, "vae_mse", check=False)

    assert proc.returncode == 1, proc.stderr
    assert "train@vae_mse failed: vae_mse: loss is nan at epoch 1, batch 2" in proc.stderr
    assert "lower train.lr" in proc.stderr
    (run,) = mlflow_runs(workdir)
    assert run.info.status == "FAILED"
    assert run.data.tags["model"] == "vae_mse"
    assert not stale.exists()
    assert not (workdir / "metrics" / "vae_mse.json").exists()
    assert not (workdir / "plots" / "vae_mse" / "history.csv").exists()
    assert not list(workdir.glob(".train-*"))  # no staging leftovers
