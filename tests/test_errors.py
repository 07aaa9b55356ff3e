"""Every error type a user can act on is defined in vaelab.core.errors, and a stage reports each as one line."""

from __future__ import annotations

import re
from pathlib import Path

from vaelab.core import errors

SRC = Path(__file__).resolve().parents[1] / "src" / "vaelab"


def test_error_types_are_defined_only_in_errors_py() -> None:
    elsewhere = [f"{p.relative_to(SRC)}: {m}" for p in sorted(SRC.rglob("*.py")) if p.name != "errors.py"
                 for m in re.findall(r"^class (\w+(?:Error|Exception))\(", p.read_text(), re.M)]
    assert elsewhere == []


def test_every_error_type_is_expected_by_the_stages() -> None:
    defined = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert defined == set(errors.EXPECTED)
