"""Vega, Vega-Lite and vega-embed for an offline `dvc plots` page (`make plots`, stages/plots.py). DVC's page loads them
from a CDN; this fetches the versions DVC's page names from the npm registry once, each tarball checked against its
pinned sha512 (the registry's `dist.integrity`), and puts each package's build/<name>.min.js beside the page."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile
import urllib.request
from pathlib import Path

from vaelab.core.errors import ReportError

PACKAGES = {  # (npm name, version): sha512 of the registry's tarball, base64
    ("vega", "5.20.2"): "qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
    ("vega-lite", "5.2.0"): "Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
    ("vega-embed", "6.18.2"): "wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
}
REGISTRY = "https://registry.npmjs.org"
TEMPLATE = Path(".dvc/plots/offline.html")   # DVC's page with <script> tags pointing at vendor/


def tarball(name: str, version: str, store: Path) -> bytes:
    """The package's tarball, from ``store`` or else the registry (then kept in ``store``), checked."""
    path = store / f"{name}-{version}.tgz"
    if not path.exists():
        store.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(f"{REGISTRY}/{name}/-/{name}-{version}.tgz", timeout=60) as answer:
            path.write_bytes(answer.read())
    data = path.read_bytes()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != PACKAGES[name, version]:  # also a cut download
        path.unlink()
        raise ReportError(f"{path}: its sha512 is not the pinned {name}@{version}'s; removed: run again to refetch")
    return data


def vendor(page_dir: Path, store: Path) -> list[Path]:
    """Each package's build/<name>.min.js into ``page_dir``/vendor (what TEMPLATE's page loads)."""
    (page_dir / "vendor").mkdir(parents=True, exist_ok=True)
    out = []
    for name, version in PACKAGES:
        with tarfile.open(fileobj=io.BytesIO(tarball(name, version, store))) as tar:
            out.append(page_dir / "vendor" / f"{name}.min.js")
            with out[-1].open("wb") as js:
                shutil.copyfileobj(tar.extractfile(f"package/build/{name}.min.js"), js)
    return out
