"""A tracking server that does not answer fails the stage early; one that dies mid-run fails it clearly.

Policy (vaelab.experiment): a tracking write that fails mid-run fails the stage, naming the URI;
the per-epoch resume checkpoint keeps every finished epoch, so the re-run loses nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from helpers import subprocess_env
from helpers.servers import SERVER_ENV, mlflow_server_cmd
from helpers.workdir import epoch_steps, make_workdir, mlflow_runs, stage_env, start_train, train, train_cmd

pytestmark = pytest.mark.slow  # stage programs and servers: the slow tier


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_against(workdir: Path, uri: str) -> subprocess.CompletedProcess:
    # The timeout only keeps a regression (a hang) from blocking the suite; it asserts nothing.
    return subprocess.run(train_cmd("ae"), cwd=workdir, env=stage_env(MLFLOW_TRACKING_URI=uri),
                          capture_output=True, text=True, timeout=300)


def assert_failed_before_training(workdir: Path, proc: subprocess.CompletedProcess, uri: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert f"train@ae failed: MLflow tracking server {uri} did not answer" in proc.stderr
    assert "epoch" not in proc.stderr  # no training started
    for name in ("checkpoints", "models", "metrics", "mlflow.db"):
        assert not (workdir / name).exists(), name


def test_closed_port_fails_before_training(tmp_path: Path, mnist_root: Path) -> None:
    workdir = make_workdir(tmp_path / "w", mnist_root)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    proc = train_against(workdir, uri)

    assert_failed_before_training(workdir, proc, uri)
    assert "Connection refused" in proc.stderr


def test_server_that_never_replies_fails_before_training(tmp_path: Path, mnist_root: Path) -> None:
    workdir = make_workdir(tmp_path / "w", mnist_root)
    with socket.socket() as silent:  # the kernel accepts connections (backlog); nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        proc = train_against(workdir, uri)

    assert_failed_before_training(workdir, proc, uri)
    assert "timed out" in proc.stderr


class Server:
    """A real ``mlflow server`` on 127.0.0.1 with its store in ``folder``; restartable."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            mlflow_server_cmd(f"sqlite:///{self.folder / 'mlflow.db'}", self.folder / "artifacts", self.port),
            env=subprocess_env(**SERVER_ENV), stdout=(self.folder / "server.log").open("a"),
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail("mlflow server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and its workers
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path, empty_store: Path) -> Iterator[Server]:
    folder = tmp_path / "server"
    folder.mkdir()
    shutil.copy2(empty_store, folder / "mlflow.db")  # the server's store, schema made (the empty_store fixture)
    srv = Server(folder)
    srv.start()
    yield srv
    srv.kill()


def test_server_dying_mid_run_fails_clearly_and_the_rerun_resumes(tmp_path: Path, mnist_root: Path,
                                                                  server: Server) -> None:
    epochs = 12
    workdir = make_workdir(tmp_path / "w", mnist_root, train__epochs=epochs, train__batch_size=50)
    proc = start_train(workdir, "ae", MLFLOW_TRACKING_URI=server.uri)
    while not (workdir / "checkpoints" / "ae" / "seed1.pt").exists():
        assert proc.poll() is None, (workdir / "stage.log").read_text()
        time.sleep(0.01)
    server.kill()

    assert proc.wait(timeout=300) == 1
    log = (workdir / "stage.log").read_text()
    assert f"train@ae failed: MLflow tracking at {server.uri} failed while logging metrics to run" in log
    assert "re-run to resume" in log
    assert (workdir / "checkpoints" / "ae" / "seed1.pt").exists()
    assert not (workdir / "models" / "ae" / "seed1" / "model.pt").exists()

    server.start()
    rerun = train(workdir, "ae", MLFLOW_TRACKING_URI=server.uri)

    assert "resuming after epoch" in rerun.stderr
    assert (workdir / "models" / "ae" / "seed1" / "model.pt").exists()
    (run,) = mlflow_runs(workdir, uri=server.uri)
    assert run.info.status == "FINISHED"
    assert epoch_steps(run, uri=server.uri) == list(range(1, epochs + 1))


def test_an_interrupt_never_cuts_a_tracking_call_in_half() -> None:
    """SIGTERM inside a store call once left SQLite's write lock held, so the run could not be marked KILLED and
    stayed RUNNING (a flaky resume test). The stage's handler holds it until the call is done; a second is not held."""
    from vaelab import tracking
    from vaelab.pipeline import stage

    def deliver() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Python runs the handler between bytecodes: it has run by now

    previous = signal.signal(signal.SIGTERM, stage._interrupt)
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with tracking.recording("a write"):
                deliver()
                finished.append("the write")
        assert finished == ["the write"]
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with tracking.recording("a write that hangs"):
                deliver()
                deliver()  # a second signal: raised now
                finished.append("the hung write")
        assert finished == ["the write"]
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):  # and outside a call, at once
            deliver()
    finally:
        signal.signal(signal.SIGTERM, previous)
