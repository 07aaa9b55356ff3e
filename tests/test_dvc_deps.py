"""dvc.yaml's deps are complete and short: every file under src/ that a stage program imports (directly or not)
is covered by a dependency of that stage (a layer's folder, or the file), so a change in it re-runs the stage;
what only records (src/vaelab/tracking) is left out on purpose (tests/test_recording.py shows it changes no
output); and a stage lists at most ten code entries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from helpers.imports import REPO, closure

# Packages that record what a stage did and never decide what it writes: no stage depends on them, nor on what
# only they import.
RECORDING = ("src/vaelab/tracking",)
RECORDING_MODULES = tuple(r.removeprefix("src/").replace("/", ".") for r in RECORDING)
MAX_CODE_ENTRIES = 10


def stages() -> list[tuple[str, Path, list[str]]]:
    """(stage name, stage program, deps) for every stage of dvc.yaml (foreach stages once: deps are per-template)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = []
    for name, st in spec.items():
        body = st.get("do", st)
        script = next(w for w in body["cmd"].split() if w.startswith("stages/"))
        out.append((name, REPO / script, body.get("deps", [])))
    return out


def runs_nothing(path: Path) -> bool:
    """A package's __init__.py that holds only its docstring: importing it can change no output."""
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def covered(path: str, deps: list[str] | tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name,script,deps", stages(), ids=[s[0] for s in stages()])
def test_stage_deps_cover_its_import_closure(name: str, script: Path, deps: list[str]) -> None:
    assert covered(str(script.relative_to(REPO)), deps), f"{name}: its program {script.name} is not a dep"
    imported = {str(p.relative_to(REPO)) for p in closure(script, skip=RECORDING_MODULES) if not runs_nothing(p)}
    missing = sorted(p for p in imported if not covered(p, deps))
    assert missing == [], f"dvc.yaml stage {name!r} imports but does not list: {missing}"


@pytest.mark.parametrize("name,script,deps", stages(), ids=[s[0] for s in stages()])
def test_stage_lists_its_code_by_layer(name: str, script: Path, deps: list[str]) -> None:
    code = [d for d in deps if d.startswith(("src/", "stages/"))]
    assert len(code) <= MAX_CODE_ENTRIES, f"dvc.yaml stage {name!r} lists {len(code)} code entries: {code}"
    recording = [d for d in deps if covered(d, RECORDING)]
    assert recording == [], f"dvc.yaml stage {name!r} depends on recording-only code {recording}"


def test_closure_sees_imports_inside_functions(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("def f():\n    from vaelab.pipeline.stage import run_stage\n")
    assert REPO / "src" / "vaelab" / "pipeline" / "stage.py" in closure(prog)
