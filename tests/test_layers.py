"""The package's layers: each folder of src/vaelab has one concern, and its imports point down only.

A reader finds a room by its name and knows what it may import. The order, lowest first (the README's layer map):

    core      config, errors, files, statistics, random streams, distributions, checkpoints, device
    data      MNIST (download, load), pixel spaces, the evaluation's image sets
    models    the registry, layers, ae, vae, cvae, likelihoods, model cards
    training  the one training loop and its optimiser
    measures  what the study measures (likelihood bounds, exact posteriors, latent metrics, continuity, ...)
    studies   typed config in, plain results out (scorecard, quadrants, claims, sweeps);  sbi: the SBI library
    viz       figures
    report    the report's sections and rendering
    tracking  MLflow (the only package that imports it): records, never decides an output
    pipeline  what ties the layers into DVC stages

A module may import its own layer and the layers below it. ``tracking`` sits apart: it may use core and
models (to load a model for MLflow's pyfunc flavour) and nothing but ``pipeline`` and the stages use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.imports import REPO, imported_modules

SRC = REPO / "src" / "vaelab"
RANK = {"core": 0, "data": 1, "models": 2, "training": 3, "measures": 4, "studies": 5, "sbi": 5, "viz": 6,
        "report": 7, "tracking": 8, "pipeline": 9}
TRACKING_MAY_IMPORT = {"core", "models", "tracking"}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.parent != SRC)


def test_every_module_is_in_a_layer() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside any layer (src/vaelab/<layer>/): {loose}"
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(RANK)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(SRC).parts[0]
    used = {layer(m) for m in imported_modules(path)} - {None, own}
    if own == "tracking":
        assert used <= TRACKING_MAY_IMPORT, f"{path.relative_to(REPO)} imports {sorted(used - TRACKING_MAY_IMPORT)}"
        return
    up = sorted(u for u in used if RANK[u] >= RANK[own] and not (u == "tracking" and own == "pipeline"))
    assert up == [], f"{path.relative_to(REPO)} (layer {own}) imports from the layer(s) above or beside it: {up}"


def test_core_imports_nothing_of_vaelab() -> None:
    for path in (SRC / "core").glob("*.py"):
        assert {m for m in imported_modules(path) if not m.startswith("vaelab.core")} == set(), path.name


def test_imports_point_down_catches_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a measure that imports the report is refused."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vaelab.report import sections\n")
    assert {layer(m) for m in imported_modules(bad)} - {None} == {"report"}
    assert RANK["report"] > RANK["measures"]


def test_a_module_docstring_says_what_it_is_for() -> None:
    missing = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if ast.get_docstring(ast.parse(p.read_text())) is None)
    assert missing == [], f"modules without a docstring: {missing}"


def test_tracking_is_the_one_mlflow_importer() -> None:
    found = sorted(str(p.relative_to(REPO)) for p in [*SRC.rglob("*.py"), *(REPO / "stages").glob("*.py")]
                   if "tracking" not in p.relative_to(SRC if p.is_relative_to(SRC) else REPO).parts
                   and any(isinstance(n, (ast.Import, ast.ImportFrom)) and "mlflow" in ast.unparse(n).split()[1].split(".")[0]
                           for n in ast.walk(ast.parse(p.read_text()))))
    assert found == [], f"only src/vaelab/tracking imports mlflow: {found}"


STAGE_MAX_LINES = 40


@pytest.mark.parametrize("path", sorted((REPO / "stages").glob("*.py")), ids=lambda p: p.name)
def test_a_stage_is_a_few_lines_without_torch(path: Path) -> None:
    """A stage reads its args, loads params, opens its recorder, runs one study, draws and publishes: the work
    itself is in the layers, so a stage program stays short and never imports torch."""
    lines = len(path.read_text().splitlines())
    assert lines <= STAGE_MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines (at most {STAGE_MAX_LINES})"
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"torch", "numpy"}, f"{path.relative_to(REPO)} imports {sorted(imported & {'torch', 'numpy'})}"
