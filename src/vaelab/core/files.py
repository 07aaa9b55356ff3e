"""Atomic file writes: every output is written to a temporary file beside it and renamed into place,
so an interrupted or failed stage never leaves a half-written file for DVC or a user to read."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are for everyone who reads the repo
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON with a final newline, atomically: every metrics file of the pipeline."""
    import json

    write_atomic(path, json.dumps(data, indent=2) + "\n")


def md5_of_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data).hexdigest()


def md5_of_file(path: str | Path) -> str:
    return md5_of_bytes(Path(path).read_bytes())
