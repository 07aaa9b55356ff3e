"""The import closure of a stage program under src/: which library files a stage runs, read from the code
(``ast``), so a test can check that dvc.yaml lists every one of them as a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    """The file of module ``vaelab.x.y`` under src/ (a package means its __init__.py), or None."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Absolute ``vaelab`` modules a file imports (at any depth of the file, including inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m == "vaelab" or m.startswith("vaelab.")}


def closure(entry: Path, skip: tuple[str, ...] = ()) -> set[Path]:
    """Every file under src/ that ``entry`` imports, directly or not (parent packages included); modules under a
    package of ``skip`` (e.g. ``vaelab.tracking``) are neither listed nor followed."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            if any(name == s or name.startswith(s + ".") for s in skip):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen
