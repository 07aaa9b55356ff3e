"""Guards for the security defaults: no code execution from files, servers on 127.0.0.1 only.

Static checks over the project's own files: cheap, and they fail the moment someone adds an unsafe
``torch.load``, ``yaml.load``/``pickle.load`` or a server command that binds every interface.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import REPO

from vaelab.core.errors import DownloadError
from vaelab.data.download import ARCHIVES, download_mnist, raw_dir

CODE = [p for d in ("src", "stages") for p in sorted((REPO / d).rglob("*.py"))]
DOCS = [REPO / "README.md", REPO / "Makefile", REPO / "dvc.yaml", *sorted((REPO / "docs").rglob("*.md"))]


def calls(pattern: str, files: list[Path]) -> list[str]:
    """``file:line: text`` for each line of ``files`` matching ``pattern``."""
    return [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in files if p.exists()
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(pattern, line)]


def test_guard_sees_the_code() -> None:
    assert any(p.parent.name == "models" and p.name == "vae.py" for p in CODE)
    assert calls(r"torch\.load\(", CODE)  # the checks below would pass vacuously otherwise


def test_every_torch_load_is_weights_only() -> None:
    unsafe = [c for c in calls(r"torch\.load\(", CODE) if "weights_only=True" not in c]
    assert not unsafe, unsafe


def test_no_unsafe_deserialisers() -> None:
    assert not calls(r"yaml\.(load|unsafe_load|full_load)\(|yaml\.Loader|pickle\.loads?\(|dill\.|marshal\.", CODE)


def test_servers_bind_localhost() -> None:
    # Command lines only (a line that starts the server, or `make x  # = mlflow ui ...`, with or without environment
    # assignments before it), not prose about it.
    commands = calls(r"^\s*(\S.*[#=]\s*)?([A-Z_]+=\S+\s+)*mlflow (ui|server)\b(?!`)", DOCS + CODE)
    assert commands, "expected the documented `mlflow ui` command"
    for line in commands:
        assert "--host 127.0.0.1" in line, line


def test_downloads_are_verified_before_use(tmp_path: Path, mnist_mirror: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, _ in ARCHIVES:
        shutil.copyfile(mnist_mirror / name, mirror / name)
    tampered = mirror / "t10k-labels-idx1-ubyte.gz"
    tampered.write_bytes(tampered.read_bytes()[:-1] + b"x")

    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_mnist(tmp_path / "data", [str(mirror)])
    assert not (raw_dir(tmp_path / "data") / tampered.name).exists()
    assert not (raw_dir(tmp_path / "data") / "t10k-labels-idx1-ubyte").exists()
