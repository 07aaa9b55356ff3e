"""`make plots` writes a `dvc plots` page that loads no script from the network: Vega, Vega-Lite and vega-embed sit
beside it, fetched from the npm registry once and checked against their pinned sha512 (a changed tarball is refused)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from helpers import run
from vaelab.core.errors import ReportError
from vaelab.report import vega

ROOT = Path(__file__).resolve().parents[1]


def test_the_plots_page_loads_its_scripts_from_beside_it(tmp_path: Path) -> None:
    # The committed histories (plots/histories.csv, in git) are what `dvc plots show` draws here.
    run([sys.executable, "stages/plots.py", "--out", str(tmp_path / "page")], ROOT, PYTHONPATH=str(ROOT / "src"))
    page = (tmp_path / "page" / "index.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert scripts == ["vendor/vega.min.js", "vendor/vega-lite.min.js", "vendor/vega-embed.min.js"]
    assert all((tmp_path / "page" / s).stat().st_size > 50_000 for s in scripts)
    assert "vegaEmbed(" in page and "cdn.jsdelivr" not in page


def test_a_tarball_that_is_not_the_pinned_one_is_refused_and_removed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "vega-5.20.2.tgz").write_bytes(b"not the package")
    with pytest.raises(ReportError, match="sha512 is not the pinned vega@5.20.2's"):
        vega.vendor(tmp_path / "page", store)
    assert not (store / "vega-5.20.2.tgz").exists()
