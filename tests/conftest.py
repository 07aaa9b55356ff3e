"""Shared fixtures: the MNIST mirror, a verified data folder, and a temporary git copy of the project.

No mocks: tests use the real archives from ``../shared/mnist`` (or ``$VAELAB_MNIST_MIRROR``), the
real ``dvc`` and ``mlflow`` CLIs and real MLflow stores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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
    if os.environ.get("PYTEST_XDIST_WORKER"):  # see pytest_collection_modifyitems
        env.setdefault("OMP_NUM_THREADS", "1")
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


# Small but real: the first 600 training and 1000 test images, one epoch, two seeds, a cheap IWAE bound and silhouette.
# Enough for every stage to run; the full-size settings are exercised by `dvc repro` itself.
# The yardsticks' costly settings (quadrature, K = 5000, 10,000 prior samples, the inference stage's local fits)
# shrink to a few images: every code path runs, in seconds (their accuracy is tested in-process).
QUICK = {"data__train_size": 600, "data__test_size": 1000, "train__epochs": 1, "device": "cpu", "seeds": [1, 2],
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


# A `models:` entry that params.yaml does not have, added to the tiny pipeline's scratch copy before its one
# `dvc repro` (dvc.yaml untouched): tests/test_pipeline.py finds its figures, eval metrics and report column.
NEW_MODEL = {"kind": "vae", "likelihood": {"name": "gaussian", "sigma": 0.5}, "latent_dim": 2, "hidden": [64, 32, 16]}

# The shared tiny pipeline is a chain of stage processes that keeps one core busy for minutes. It starts in the
# background as soon as the tests are collected, and the tests that read it run last: meanwhile the other tests
# use the machine's other cores. Under pytest-xdist every worker collects the same tests; the first worker
# (gw0) builds the pipeline in the folder all workers share, and every worker waits for its `rc` file.
PIPELINE_FIXTURES = {"tiny_pipeline", "pipeline_copy"}
# Seconds each took on the 2-core machine (`--durations`), the longest started first.
LONGEST = {"test_parallel_queued_experiments_on_the_postgres_server_each_log_exactly_their_own_run": 110,
           "test_forced_rerun_is_byte_identical": 60, "test_server_dying_mid_run_fails_clearly_and_the_rerun_resumes": 55,
           "test_pushed_results_are_pulled_by_a_fresh_clone_without_retraining": 30}
TINY_TIMEOUT_S = 1800
_tiny: dict[str, subprocess.Popen] = {}


def _needs_pipeline(item: pytest.Item) -> bool:
    return bool(PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())))


def _tiny_folder(config: pytest.Config) -> Path:
    """<pytest's base temp>/tiny, the same folder for every xdist worker (their base temps are its children)."""
    base = config._tmp_path_factory.getbasetemp()  # the folder pytest's tmp_path fixtures are made in
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny"


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: build only if a selected test needs it
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # The pipeline's readers last (they wait for it), and in both groups the slow tests first: their processes
    # then overlap the quick in-process tests, and the workers finish together. Stable: otherwise collection order.
    items.sort(key=lambda item: (_needs_pipeline(item), item.get_closest_marker("slow") is None,
                                 -LONGEST.get(item.originalname, 0)))
    owner = os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0"
    if owner and any(map(_needs_pipeline, items)) and not config.option.collectonly:
        folder = _tiny_folder(config)
        folder.mkdir()
        proj = make_project_copy(folder / "project")
        quick_params(proj)
        set_params(proj, models__vae_new=NEW_MODEL)
        run(["git", "commit", "-qam", "quick params and a new models: entry"], proj)
        # The results are committed (git status clean); `rc` appears, whole, only at the end.
        script = ("dvc repro > ../repro.log 2>&1 && git add -A && git commit -qm 'tiny pipeline results'; "
                  "echo $? > ../rc.part && mv ../rc.part ../rc")
        _tiny["proc"] = subprocess.Popen(["bash", "-c", script], cwd=proj, env=subprocess_env(),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The workers, the stage programs they start and the tiny pipeline share the cores: one torch thread each
        # (more would only contend; subprocess_env sets OMP_NUM_THREADS=1 too), and the workers and their children
        # step back (nice) so that the tiny pipeline, which the last tests wait for, goes first.
        import torch

        torch.set_num_threads(1)
        if any(map(_needs_pipeline, items)):
            os.nice(10)


# Tests that share a costly module-level result run on one xdist worker, so it is made once (`--dist loadgroup`
# would say this with a mark, but pytest-xdist 3.8 cannot rename pytest 9.2's node ids); every other test is
# scheduled on its own, in collection order.
SHARED_SETUP = ("tests/test_resume.py",)  # its `reference` training


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than cores, at most 4. A worker often waits (on a server, a queue, a retry), and
    the third one then uses the core."""
    return min(4, (os.cpu_count() or 1) + 1)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerPerSharedSetup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((m for m in SHARED_SETUP if nodeid.startswith(m + "::")), nodeid)

    return OneWorkerPerSharedSetup(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    proc = _tiny.get("proc")
    if proc is not None and proc.poll() is None:
        if exitstatus == pytest.ExitCode.INTERRUPTED:  # Ctrl-C: nobody will read it
            os.killpg(proc.pid, 9)
        proc.wait()  # another xdist worker may still be waiting for it


@pytest.fixture(scope="session")
def tiny_pipeline(pytestconfig: pytest.Config) -> Path:
    """ONE `dvc repro` of the whole pipeline with quick params, shared by the session: read it, never change it
    (use ``pipeline_copy`` to change things). Its results are committed, so `git status` is clean."""
    folder = _tiny_folder(pytestconfig)
    deadline = time.monotonic() + TINY_TIMEOUT_S
    while not (folder / "rc").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the tiny pipeline ({folder}) did not finish in {TINY_TIMEOUT_S} s")
        time.sleep(0.5)
    if (folder / "rc").read_text().strip() != "0":
        pytest.fail(f"the tiny pipeline's dvc repro failed:\n{(folder / 'repro.log').read_text()[-8000:]}")
    return folder / "project"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with MLflow's schema, made once by MLflow itself. Creating the schema
    takes a few seconds; tests whose subject is not a fresh store start from a copy (tests/test_concurrency.py
    and the tiny pipeline still have MLflow create theirs)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    create_mlflow_schema(f"sqlite:///{path}", path.parent)
    return path


def create_mlflow_schema(uri: str, cwd: Path) -> None:
    """Have MLflow's own SQL store create its schema at ``uri``, in a child process (no connection stays open)."""
    run([sys.executable, "-c", "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()", uri], cwd)


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
