"""A training stage killed mid-run resumes from its last finished epoch and ends bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import run, set_params, subprocess_env
from helpers.workdir import epoch_steps, make_workdir, mlflow_runs, start_train, train

from vaelab.models import load
from vaelab.training.loop import TERMS

pytestmark = pytest.mark.slow  # stage programs and servers: the slow tier

MODEL = "vae_bce"  # stochastic (sampled z): resuming must restore the RNG states too
# 40 batches an epoch: long enough that a kill right after the first checkpoint lands mid-run.
PARAMS = {"data__train_size": 2000, "train__epochs": 4, "train__batch_size": 50, "seeds": [1]}
OUTPUTS = (f"metrics/train/{MODEL}.json", f"plots/history/{MODEL}/seed1.csv", f"models/{MODEL}/seed1/model.pt")
CHECKPOINT = Path("checkpoints") / MODEL / "seed1.pt"


@pytest.fixture(scope="session")  # not "module": another module's test between these would end it
def reference(tmp_path_factory: pytest.TempPathFactory, mnist_root: Path, empty_store: Path) -> Path:
    """An uninterrupted run with the same params."""
    workdir = make_workdir(tmp_path_factory.mktemp("reference"), mnist_root, empty_store, **PARAMS)
    train(workdir, MODEL)
    return workdir


def assert_same_result(workdir: Path, reference: Path) -> None:
    got = load(workdir / "models" / MODEL / "seed1").state_dict()
    want = load(reference / "models" / MODEL / "seed1").state_dict()
    assert got.keys() == want.keys()
    for key in want:
        # Exact: both runs have the same params, so the same batch shapes, on the stage's single-thread worker.
        assert torch.equal(got[key], want[key]), key
    for rel in OUTPUTS:
        assert (workdir / rel).read_bytes() == (reference / rel).read_bytes(), rel


def assert_each_epoch_once(workdir: Path) -> None:
    (run,) = mlflow_runs(workdir)
    assert run.info.status == "FINISHED"
    for split in ("train", "test"):
        for term in TERMS:
            assert epoch_steps(run, f"epoch/{term}/{split}", workdir=workdir) == [1, 2, 3, 4], (split, term)


def kill_after_first_checkpoint(workdir: Path, sig: signal.Signals) -> int:
    proc = start_train(workdir, MODEL)
    checkpoint = workdir / CHECKPOINT
    while not checkpoint.exists():
        assert proc.poll() is None, (workdir / "stage.log").read_text()
        time.sleep(0.01)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_stage_resumes_bit_identical(tmp_path: Path, mnist_root: Path, empty_store: Path, reference: Path,
                                            sig: signal.Signals) -> None:
    workdir = make_workdir(tmp_path / "w", mnist_root, empty_store, **PARAMS)

    code = kill_after_first_checkpoint(workdir, sig)

    finished = len(torch.load(workdir / CHECKPOINT, weights_only=True)["history"])
    assert 1 <= finished < 4, "the kill did not land mid-run"
    assert not (workdir / "models" / MODEL / "seed1" / "model.pt").exists()
    if sig == signal.SIGTERM:  # handled like Ctrl-C: clean exit code, run marked KILLED
        assert code == 130
        assert "interrupted (SIGTERM)" in (workdir / "stage.log").read_text()
        assert [r.info.status for r in mlflow_runs(workdir, role=None)] == ["KILLED", "KILLED"]  # model and seed
    else:
        assert code == -signal.SIGKILL

    proc = train(workdir, MODEL)

    assert f"resuming after epoch {finished} of 4" in proc.stderr
    (parent,) = mlflow_runs(workdir, role="model")  # the interrupted attempt's model run, resumed
    (seed_run,) = mlflow_runs(workdir)
    assert parent.info.status == "FINISHED" and seed_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert not (workdir / CHECKPOINT).exists()  # done: DVC outputs are the result
    assert_same_result(workdir, reference)
    assert_each_epoch_once(workdir)


def test_checkpoint_of_other_params_is_set_aside(tmp_path: Path, mnist_root: Path, empty_store: Path,
                                                reference: Path) -> None:
    workdir = make_workdir(tmp_path / "w", mnist_root, empty_store, **PARAMS)
    other = make_workdir(tmp_path / "other", mnist_root, empty_store, **{**PARAMS, "train__lr": 0.01})
    code = kill_after_first_checkpoint(other, signal.SIGKILL)
    assert code == -signal.SIGKILL
    (workdir / CHECKPOINT).parent.mkdir(parents=True)
    (other / CHECKPOINT).rename(workdir / CHECKPOINT)

    proc = train(workdir, MODEL)

    assert "belongs to other params or data" in proc.stderr
    assert "resuming" not in proc.stderr
    assert (workdir / CHECKPOINT).with_suffix(".stale").exists()
    assert_same_result(workdir, reference)  # trained from scratch with its own params
    assert_each_epoch_once(workdir)


def test_killed_dvc_repro_resumes_on_the_next_dvc_repro(project: Path, reference: Path) -> None:
    set_params(project, **PARAMS)
    run(["dvc", "repro", "download"], project)
    dvc = subprocess.Popen(["dvc", "repro", f"train@{MODEL}"], cwd=project, env=subprocess_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = project / CHECKPOINT
    while not checkpoint.exists():
        assert dvc.poll() is None, "dvc repro ended before the first checkpoint"
        time.sleep(0.01)
    os.killpg(dvc.pid, signal.SIGKILL)  # dvc and the stage it runs, like a lost terminal or machine
    dvc.wait()
    assert not (project / "models" / MODEL / "seed1" / "model.pt").exists()

    proc = run(["dvc", "repro", f"train@{MODEL}"], project)

    assert "resuming after epoch" in proc.stdout + proc.stderr
    assert_same_result(project, reference)
    assert_each_epoch_once(project)
    assert run(["dvc", "status", f"train@{MODEL}"], project).stdout.strip().endswith("up to date.")
