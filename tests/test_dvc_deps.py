"""dvc.yaml's deps are complete: every file under src/ that a stage program imports (directly or not) is a
dependency of that stage, so a change in it re-runs the stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.imports import REPO, closure


def stages() -> list[tuple[str, Path, list[str]]]:
    """(stage name, stage program, deps) for every stage of dvc.yaml (foreach stages once: deps are per-template)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = []
    for name, st in spec.items():
        body = st.get("do", st)
        script = next(w for w in body["cmd"].split() if w.startswith("stages/"))
        out.append((name, REPO / script, body.get("deps", [])))
    return out


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name,script,deps", stages(), ids=[s[0] for s in stages()])
def test_stage_deps_cover_its_import_closure(name: str, script: Path, deps: list[str]) -> None:
    assert covered(str(script.relative_to(REPO)), deps), f"{name}: its program {script.name} is not a dep"
    missing = sorted(str(p.relative_to(REPO)) for p in closure(script) if not covered(str(p.relative_to(REPO)), deps))
    assert missing == [], f"dvc.yaml stage {name!r} imports but does not list: {missing}"


def test_closure_sees_imports_inside_functions(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("def f():\n    from vaelab.stage import run_stage\n")
    assert REPO / "src" / "vaelab" / "stage.py" in closure(prog)
