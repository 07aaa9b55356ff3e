"""Helpers the tests import (``from helpers import run, REPO, ...``): the real CLIs' environment, a temporary
git copy of the project, its quick params. Fixtures live in tests/conftest.py; ``helpers.workdir`` runs the train
stage in a scratch folder, ``helpers.servers`` starts PostgreSQL and ``mlflow server``, ``helpers.imports`` reads
a stage's import closure.

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

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the environment's bin/ with dvc, mlflow and python


def mirror_dir() -> Path:
    env = os.environ.get("VAELAB_MNIST_MIRROR")
    path = Path(env) if env and not env.startswith("http") else REPO.parent / "shared" / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST archives not found in {path}: set VAELAB_MNIST_MIRROR to a folder holding them")
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for the real CLIs: our bin/ first, the local mirror, no outside tracking server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VAELAB_MNIST_MIRROR"] = str(mirror_dir())
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "vaelab tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@vaelab.invalid"
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: one thread per stage program
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
         "evaluate__continuity_pairs": 20, "evaluate__tight_images": 2, "evaluate__style_images": 100,
         "evaluate__trust_images": 200,
         "inference__images": 8, "inference__iwae_ks": [1, 10], "inference__local_images": 4,
         "inference__local_steps": 20, "inference__figure_digits": 2,
         "quadrants__test_images": 50, "quadrants__epochs": 1, "quadrants__baseline_epochs": 1,
         "sbi__tasks": ["two_moons"], "sbi__budgets": [200], "sbi__epochs": [2], "sbi__batch_sizes": [50],
         "sbi__observations": [1, 2], "sbi__samples": 100}


# The models the pipeline tests run end to end: one AE and the post's two VAEs. Every registered kind and
# likelihood is built, trained a step, saved, loaded and drawn by tests/test_models_contract.py, and a new
# `models:` entry is run through the whole pipeline by tests/test_pipeline.py.
QUICK_MODELS = ("ae", "vae_mse", "vae_bce")


def seeds_of(params: dict, model: str) -> list[int]:
    """A model's seeds in a params.yaml mapping: its entry's own `seeds`, else the top-level ones."""
    return params["models"][model].get("seeds", params["seeds"])


def without_model_seeds(models: dict) -> dict:
    """`models:` entries without their own `seeds` (quick runs train every model with the top-level seeds)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "seeds"} for k, v in models.items()}


def quick_params(project: Path) -> None:
    """Quick settings, the QUICK_MODELS only (with the top-level seeds), and the claims about them."""
    set_params(project, **QUICK)
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["models"] = without_model_seeds({k: v for k, v in params["models"].items() if k in QUICK_MODELS})
    params["claims"] = [c for c in params.get("claims", []) if c["model"] in QUICK_MODELS and c["baseline"] in QUICK_MODELS]
    path.write_text(yaml.safe_dump(params, sort_keys=False))


# A `models:` entry that params.yaml does not have, added to the tiny pipeline's scratch copy before its one
# `dvc repro` (dvc.yaml untouched): tests/test_pipeline.py finds its figures, eval metrics and report column.
# It has its own seeds, the first not the top-level first: the figures and the report follow the entry's.
NEW_MODEL = {"kind": "vae", "likelihood": {"name": "gaussian", "sigma": 0.5}, "latent_dim": 2, "hidden": [64, 32, 16],
             "seeds": [3, 1]}


def create_mlflow_schema(uri: str, cwd: Path) -> None:
    """Have MLflow's own SQL store create its schema at ``uri``, in a child process (no connection stays open)."""
    run([sys.executable, "-c", "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()", uri], cwd)


def build_tiny_pipeline(folder: Path) -> Path:
    """``folder/project``: a copy of the project with quick params and NEW_MODEL, after ONE `dvc repro` of the
    whole pipeline, its results committed (so `git status` is clean). Fails with the end of dvc's output."""
    proj = make_project_copy(folder / "project")
    quick_params(proj)
    set_params(proj, models__vae_new=NEW_MODEL)
    run(["git", "commit", "-qam", "quick params and a new models: entry"], proj)
    repro = run(["dvc", "repro"], proj, check=False)
    (folder / "repro.log").write_text(repro.stdout + repro.stderr)
    if repro.returncode != 0:
        pytest.fail(f"the tiny pipeline's dvc repro exited {repro.returncode}:\n{(repro.stdout + repro.stderr)[-8000:]}")
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "tiny pipeline results"], proj)
    return proj
