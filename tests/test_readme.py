"""The README holds no result that can go stale: no number of the pipeline's outputs appears in it (results live in
reports/ and metrics/, written by the pipeline). Checked against every number of the committed metrics and reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A decimal with at least three significant digits ("133.85", "0.725", "6.58"): a result looks like that; "0.05" or
# "2.5" are settings, and are left to the reader.
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")
# Numbers that are not results, though an output may hold the same value.
ALLOWED = {"3.10": "the oldest Python it runs on", "3.17": "an MLflow version", "8.00": "a uniform density's bits/dim"}


def _significant(text: str) -> int:
    return len(text.lstrip("-").replace(".", "").lstrip("0"))


def _values(obj: object) -> list[float]:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return [float(obj)] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def stale_numbers(text: str, values: list[float]) -> list[str]:
    """The numbers of ``text`` (three or more significant digits, not ALLOWED) that equal one of ``values`` rounded
    to as many decimals."""
    quoted = {n for n in NUMBER.findall(text) if _significant(n) >= 3 and n not in ALLOWED}
    return sorted({n for n in quoted for v in values
                   if round(v, len(n.split(".")[1])) == float(n) and abs(v) >= 10 ** -len(n.split(".")[1])})


def test_a_quoted_result_is_found() -> None:
    values = [133.8512, 0.7253, 42.0]
    assert stale_numbers("the VAE scores 133.85 nats, kNN 0.725; batch 0.05 and 2.5", values) == ["0.725", "133.85"]


def test_the_readme_quotes_no_number_of_the_pipelines_outputs() -> None:
    outputs = [*ROOT.glob("metrics/**/*.json"), *ROOT.glob("reports/*.json")]
    assert outputs, "no committed metrics to compare with"
    values = [v for path in outputs for v in _values(json.loads(path.read_text()))]
    stale = stale_numbers((ROOT / "README.md").read_text(), values)
    assert not stale, (f"README.md quotes {stale}, numbers of the pipeline's outputs: a result there goes stale "
                       "with the next run; point to reports/report.md or the metrics file instead")
