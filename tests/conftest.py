"""Fixtures only (the helpers tests import are in tests/helpers/): the MNIST mirror, a verified data folder, a
temporary git copy of the project, the shared tiny pipeline, empty MLflow stores, PostgreSQL and `mlflow server`.

No mocks: tests use the real archives from ``../shared/mnist`` (or ``$VAELAB_MNIST_MIRROR``), the
real ``dvc`` and ``mlflow`` CLIs and real MLflow stores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import build_tiny_pipeline, create_mlflow_schema, make_project_copy, mirror_dir, quick_params, run
from helpers.servers import (PostgresCluster, PostgresUnavailable, TrackingServer, new_database, pg_rows,
                             running_mlflow_server, start_postgres, stop_postgres)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker() -> None:
    """Under pytest-xdist the workers share the cores: one torch thread each (more would only contend; the stage
    programs they start get OMP_NUM_THREADS=1 from helpers.subprocess_env)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seeded_torch() -> Iterator[None]:
    """Every test starts from torch's global generator seeded with 0 (a draw without its own generator is still
    seeded), and leaves the generator and the thread count as it found them."""
    import torch

    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    return mirror_dir()


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    """A data folder holding the verified, unpacked archives (shared by the worker's session; read-only use)."""
    from vaelab.data.download import download_mnist

    root = tmp_path_factory.mktemp("data")
    download_mnist(root, [str(mnist_mirror)])
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temporary git copy of the project with quick params committed (not run yet)."""
    proj = make_project_copy(tmp_path / "project")
    quick_params(proj)
    run(["git", "commit", "-qam", "quick params"], proj)
    return proj


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """ONE `dvc repro` of the whole pipeline with quick params (helpers.build_tiny_pipeline), shared by the session
    and by all pytest-xdist workers: read it, never change it (use ``pipeline_copy`` to change things).

    The first worker that needs it builds it in the folder all workers' temp dirs share, under a file lock; the
    others wait on the lock, then read it (pytest-xdist's documented pattern for a once-per-run session fixture)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    folder, failed = shared / "tiny", shared / "tiny.failed"
    with FileLock(str(shared / "tiny.lock")):
        if failed.exists():
            pytest.fail(f"the tiny pipeline's build failed on another worker:\n{failed.read_text()}")
        if not (folder / "done").exists():
            folder.mkdir(exist_ok=True)
            try:
                build_tiny_pipeline(folder)
            except BaseException as err:
                failed.write_text(str(err)[-8000:])
                raise
            (folder / "done").touch()
    return folder / "project"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with MLflow's schema, made once by MLflow itself. Creating the schema
    takes a few seconds; tests whose subject is not a fresh store start from a copy (tests/test_concurrency.py
    and the tiny pipeline still have MLflow create theirs)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    create_mlflow_schema(f"sqlite:///{path}", path.parent)
    return path


@pytest.fixture
def pipeline_copy(tiny_pipeline: Path, empty_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny pipeline (git history, DVC cache and outputs included) with an empty MLflow
    store: the shared store's experiment records an absolute artifact root inside the shared folder, which a
    copy must never write to. (Later stages then link to checkpoints they cannot find by a new run, tagged
    `vaelab.lineage = checkpoint-only`, as in a fresh clone.)"""
    dest = tmp_path / "project"
    shutil.copytree(tiny_pipeline, dest, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == tiny_pipeline
                                                  and n in ("mlflow.db", "mlflow.db.lock", "mlruns")])
    shutil.copy2(empty_store, dest / "mlflow.db")
    return dest


# PostgreSQL and `mlflow server` (helpers.servers) for the team-setup tests.

@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL for the whole session (initdb + start cost about a second; tests share it
    but not their data: see postgres_url). Its folder is under the system temp dir, which the server's
    user (`postgres` when we are root) can reach, unlike pytest's 0700 tmp_path."""
    base = Path(tempfile.mkdtemp(prefix="vaelab-pg-"))
    base.chmod(0o711)
    try:
        try:
            cluster = start_postgres(base / "cluster")
        except PostgresUnavailable as err:
            if os.environ.get("VAELAB_REQUIRE_POSTGRES"):   # CI (.ci/run): the team-server tests may not vanish
                pytest.fail(f"PostgreSQL is required here (VAELAB_REQUIRE_POSTGRES) but unavailable: {err}")
            pytest.skip(f"PostgreSQL is not installed: {err}")
        try:
            yield cluster
        finally:
            stop_postgres(cluster.dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_schema_template(postgres_cluster: PostgresCluster) -> str:
    """A database holding MLflow's schema, made once by MLflow's own SQL store (in a child process, so no
    connection stays open: PostgreSQL copies a template only while nobody is connected to it)."""
    name = "mlflow_schema"
    pg_rows(postgres_cluster.database_url("postgres"), f"create database {name}")
    create_mlflow_schema(postgres_cluster.database_url(name), postgres_cluster.dir)
    return name


@pytest.fixture
def empty_postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A new, empty database for this test, dropped afterwards: `mlflow server` creates its schema."""
    with new_database(postgres_cluster) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, mlflow_schema_template: str) -> Iterator[str]:
    """A new database for this test (function scope: no test sees another's experiments) that already holds
    MLflow's schema (a copy of the template: migrating a new database costs seconds), dropped afterwards."""
    with new_database(postgres_cluster, mlflow_schema_template) as url:
        yield url


@pytest.fixture
def mlflow_postgres_server(postgres_url: str, tmp_path: Path) -> Iterator[TrackingServer]:
    """``mlflow server`` on this test's PostgreSQL database, artifacts proxied into ``tmp_path/artifacts``."""
    with running_mlflow_server(postgres_url, tmp_path) as server:
        yield server


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than cores, at most 4. A worker often waits (on a server, a queue, a retry, the
    tiny pipeline's lock), and the extra one then uses the core."""
    return min(4, (os.cpu_count() or 1) + 1)
