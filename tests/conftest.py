"""Shared fixtures: the MNIST mirror, a verified data folder, and a temporary git copy of the project.

No mocks: tests use the real archives from ``../shared/mnist`` (or ``$VAELAB_MNIST_MIRROR``), the
real ``dvc`` and ``mlflow`` CLIs and real MLflow stores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# PostgreSQL and `mlflow server` fixtures (tests/servers.py), registered once for the whole session.
pytest_plugins = ["servers"]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's bin/ with dvc, mlflow and python


def mirror_dir() -> Path:
    env = os.environ.get("VAELAB_MNIST_MIRROR")
    path = Path(env) if env and not env.startswith("http") else REPO.parent / "shared" / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST archives not found in {path}: set VAELAB_MNIST_MIRROR to a folder holding them")
    return path


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    return mirror_dir()


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    """A data folder holding the verified, unpacked archives (shared by the whole session; read-only use)."""
    from vaelab.download import download_mnist

    root = tmp_path_factory.mktemp("data")
    download_mnist(root, [str(mnist_mirror)])
    return root


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for the real CLIs: our bin/ first, the local mirror, no outside tracking server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VAELAB_MNIST_MIRROR"] = str(mirror_dir())
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "vaelab tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@vaelab.invalid"
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run a command in ``cwd``; on an unexpected exit code, fail with its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def make_project_copy(dest: Path) -> Path:
    """A fresh git repository holding the project's files as they are in the working tree now.

    (A plain ``git clone`` would miss uncommitted work while developing; CI's tree is clean, so
    there the two are the same.)
    """
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    # The committed results of the default pipeline (dvc.lock and the git-tracked outputs it lists) stay
    # behind: each test starts from a project that has not been run yet.
    lock = REPO / "dvc.lock"
    outs = [o["path"] for st in (yaml.safe_load(lock.read_text())["stages"].values() if lock.exists() else [])
            for o in st.get("outs", [])]
    results = ("dvc.lock", *outs)
    for rel in filter(None, listed):
        if any(rel == out or rel.startswith(out.rstrip("/") + "/") for out in results):
            continue
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "project under test"], dest)
    return dest


def set_params(project: Path, **updates) -> None:
    """Edit params.yaml in ``project``: keys are dotted paths with '__' for '.', e.g. train__epochs=1."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in updates.items():
        node = params
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


# Small but real: the first 600 training images, one epoch, two seeds, a cheap IWAE bound and silhouette.
# Enough for every stage to run; the full-size settings are exercised by `dvc repro` itself.
# The yardsticks' costly settings (quadrature, K = 5000, 10,000 prior samples, the inference stage's local fits)
# shrink to a few images: every code path runs, in seconds (their accuracy is tested in-process).
QUICK = {"data__train_size": 600, "train__epochs": 1, "device": "cpu", "seeds": [1, 2],
         "evaluate__iwae_samples": 4, "evaluate__silhouette_size": 1000, "evaluate__likelihood_images": 200,
         "evaluate__binarized_iwae_samples": 8, "evaluate__binarized_images": 50,
         "evaluate__quadrature_images": 8, "evaluate__sample_images": 500, "judge__epochs": 1,
         "inference__images": 8, "inference__iwae_ks": [1, 10], "inference__local_images": 4,
         "inference__local_steps": 20, "inference__figure_digits": 2,
         "quadrants__test_images": 50, "quadrants__epochs": 1, "quadrants__baseline_epochs": 1}


# The models the pipeline tests run end to end: one AE and the post's two VAEs. Every registered kind and
# likelihood is built, trained a step, saved, loaded and drawn by tests/test_models_contract.py, and a new
# `models:` entry is run through the whole pipeline by tests/test_pipeline.py.
QUICK_MODELS = ("ae", "vae_mse", "vae_bce")


def quick_params(project: Path) -> None:
    """Quick settings, the QUICK_MODELS only, and the claims about them."""
    set_params(project, **QUICK)
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["models"] = {k: v for k, v in params["models"].items() if k in QUICK_MODELS}
    params["claims"] = [c for c in params.get("claims", []) if c["model"] in QUICK_MODELS and c["baseline"] in QUICK_MODELS]
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temporary git copy of the project with quick params committed (not run yet)."""
    proj = make_project_copy(tmp_path / "project")
    quick_params(proj)
    run(["git", "commit", "-qam", "quick params"], proj)
    return proj


# The shared tiny pipeline is a chain of stage processes that keeps one core busy for minutes. It starts in the
# background as soon as the tests are collected, and the tests that read it run last: meanwhile the other tests
# use the machine's other core (on 2 cores this hides most of its time).
PIPELINE_FIXTURES = {"tiny_pipeline", "pipeline_copy"}
_tiny: dict[str, object] = {}


def _needs_pipeline(item: pytest.Item) -> bool:
    return bool(PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: build only if a selected test needs it
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_needs_pipeline)  # stable: the order within each group is kept
    if any(map(_needs_pipeline, items)) and not config.option.collectonly:
        # The same folder pytest's tmp_path_factory fixture hands out (it is not requested by a test here).
        proj = make_project_copy(config._tmp_path_factory.mktemp("tiny") / "project")
        quick_params(proj)
        run(["git", "commit", "-qam", "quick params"], proj)
        with (proj.parent / "repro.log").open("w") as log:  # the child keeps its own copy of the file
            _tiny.update(project=proj, proc=subprocess.Popen(
                ["dvc", "repro"], cwd=proj, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))


def pytest_unconfigure(config: pytest.Config) -> None:
    proc = _tiny.get("proc")
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:  # the session ended before a test needed it
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="session")
def tiny_pipeline() -> Path:
    """ONE `dvc repro` of the whole pipeline with quick params, shared by the session: read it, never change it
    (use ``pipeline_copy`` to change things). Its results are committed, so `git status` is clean."""
    proc, proj = _tiny["proc"], _tiny["project"]
    assert isinstance(proc, subprocess.Popen) and isinstance(proj, Path)
    if proc.wait() != 0:
        pytest.fail(f"the tiny pipeline's dvc repro exited {proc.returncode}:\n"
                    f"{(proj.parent / 'repro.log').read_text()[-8000:]}")
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "tiny pipeline results"], proj)
    return proj


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with MLflow's schema, made once by MLflow itself. Creating the schema
    takes a few seconds; tests whose subject is not a fresh store start from a copy (tests/test_concurrency.py
    and the tiny pipeline still have MLflow create theirs)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    run([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient('sqlite:///{path}').search_experiments()"],
        path.parent)
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
