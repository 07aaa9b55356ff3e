"""Real servers for the team-setup tests: a private PostgreSQL and an `mlflow server` on 127.0.0.1.

PostgreSQL is started by ``scripts/postgres.sh`` (the commands the README gives), once per pytest
session; each test gets its own fresh database in it, so tests never see each other's runs.
The fixtures are in tests/conftest.py:

- ``postgres_cluster`` (session): the running cluster (skips the test if PostgreSQL is not installed).
- ``postgres_url`` (function): ``postgresql://vaelab:PASSWORD@127.0.0.1:PORT/t_<hex>``, a new database holding
  MLflow's schema (copied from a template MLflow made once); ``empty_postgres_url``: a new empty one.
- ``mlflow_postgres_server`` (function): ``TrackingServer(url, artifacts)`` of an ``mlflow server`` on that
  database with proxied artifacts stored in ``artifacts``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import REPO, subprocess_env

POSTGRES_SH = REPO / "scripts" / "postgres.sh"
NOT_INSTALLED = 3  # postgres.sh's exit status when it finds no PostgreSQL binaries
SERVER_TIMEOUT_S = 90
PORT_ATTEMPTS = 3  # a free port can be taken by another process between the probe and the bind


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the only reason the tests skip)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster made by ``scripts/postgres.sh start``: its folder and the URL it printed."""

    dir: Path
    url: str  # postgresql://vaelab:PASSWORD@127.0.0.1:PORT/mlflow

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` in this cluster, same role and password."""
        return f"{self.url.rsplit('/', 1)[0]}/{name}"


def start_postgres(directory: Path) -> PostgresCluster:
    """Create (first time) and start a cluster in ``directory`` via postgres.sh, on a free port.

    Raises PostgresUnavailable when PostgreSQL is not installed, RuntimeError on any other failure.
    """
    for attempt in range(PORT_ATTEMPTS):
        proc = subprocess.run(["bash", str(POSTGRES_SH), "start", str(directory), str(free_port())],
                              env=subprocess_env(), capture_output=True, text=True)
        if proc.returncode == 0:
            return PostgresCluster(directory, proc.stdout.strip().splitlines()[-1])
        if proc.returncode == NOT_INSTALLED:
            raise PostgresUnavailable(proc.stderr.strip())
        if "pg_ctl start failed" not in proc.stderr or attempt == PORT_ATTEMPTS - 1:
            raise RuntimeError(f"scripts/postgres.sh start {directory} failed:\n{proc.stderr}")
    raise AssertionError("unreachable")


def stop_postgres(directory: Path) -> None:
    """``scripts/postgres.sh stop``: a fast shutdown (open sessions are ended, data is kept)."""
    subprocess.run(["bash", str(POSTGRES_SH), "stop", str(directory)], env=subprocess_env(),
                   capture_output=True, text=True, check=True)


def pg_rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on ``url`` (autocommit) and return its rows ([] for a statement with none)."""
    # psycopg 3: the driver SQLAlchemy 2.1+ (and so MLflow's SQL store) uses for postgresql:// URLs.
    import psycopg

    # autocommit: CREATE/DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


class TrackingServer(NamedTuple):
    """A running ``mlflow server``: its http URL and the folder its proxied artifacts are stored in."""

    url: str
    artifacts: Path


# MLflow 3's server also starts a job runner for its GenAI features (evaluation jobs, trace roll-ups): eight more
# processes that each import mlflow, 36 s of CPU to start instead of 5.7 s (measured on the 2-core machine).
# vaelab uses none of it, and the tests need those cores.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_cmd(backend_uri: str, artifacts: Path, port: int) -> list[str]:
    """The server command line: one worker (a test sends few requests), artifacts proxied to a folder."""
    return ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts)]


def _stop_group(proc: subprocess.Popen) -> None:
    """End the server and its uvicorn workers (its own process group). SIGKILL: a polite stop waits ~10 s for
    idle keep-alive connections, and a SQL store loses nothing committed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_healthy(proc: subprocess.Popen, base: str) -> bool:
    """True once GET /health answers; False if the server exited first. Fails the test past the deadline."""
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).close()
            return True
        except OSError:
            if proc.poll() is not None:
                return False
            time.sleep(0.3)
    return False


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, root: Path) -> Iterator[TrackingServer]:
    """Run ``mlflow server`` on ``backend_uri`` with its working folder ``root/server``, its artifacts in
    ``root/artifacts`` and its output in ``root/server.log``; stop it on exit.

    The working folder is empty and separate, so a test can check that nothing (no mlflow.db, no
    mlruns/) was written where the server runs.
    """
    workdir, artifacts, log_path = root / "server", root / "artifacts", root / "server.log"
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(mlflow_server_cmd(backend_uri, artifacts, port), cwd=workdir,
                                    env=subprocess_env(**SERVER_ENV), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            if _wait_healthy(proc, base):
                yield TrackingServer(base, artifacts)
                return
        finally:
            _stop_group(proc)
        text = log_path.read_text()
        if "address already in use" not in text.lower() or attempt == PORT_ATTEMPTS - 1:
            pytest.fail(f"mlflow server on {backend_uri.split('@')[-1]} did not come up:\n{text[-4000:]}")


@contextlib.contextmanager
def new_database(cluster: PostgresCluster, template: str | None = None) -> Iterator[str]:
    """A new database in ``cluster`` (a copy of ``template``, or empty), dropped afterwards even if a session
    is still open on it; yields its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = cluster.database_url("postgres")
    pg_rows(admin, f"create database {name}" + (f" template {template}" if template else ""))  # names are ours
    try:
        yield cluster.database_url(name)
    finally:
        pg_rows(admin, f"drop database if exists {name} with (force)")
