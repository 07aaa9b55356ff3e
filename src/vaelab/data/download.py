"""Fetch the four official MNIST archives from a list of mirrors, verify them, and unpack them.

Files land in torchvision's layout (``<root>/MNIST/raw/``: the ``.gz`` archives and the unpacked
IDX files), so both :mod:`vaelab.data.mnist` and ``torchvision.datasets.MNIST(root, download=False)`` read
them. Each archive is checked against the MD5 sum that torchvision's ``MNIST`` dataset checks; bytes
are written to a temporary file and renamed only once verified, so nothing half-written is left.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from vaelab.core.errors import DownloadError
from vaelab.core.files import atomic_path

log = logging.getLogger(__name__)

MIRROR_ENV = "VAELAB_MNIST_MIRROR"

# (archive, MD5) exactly as torchvision.datasets.MNIST.resources lists them.
ARCHIVES: tuple[tuple[str, str], ...] = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
)
TIMEOUT_S = 30.0



def raw_dir(root: str | Path) -> Path:
    """Where the archives and unpacked IDX files live (torchvision's MNIST layout)."""
    return Path(root) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirrors_from_env(mirrors: list[str]) -> list[str]:
    """The mirror list to try: ``$VAELAB_MNIST_MIRROR`` first when set, then ``mirrors``."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    return ([env] if env else []) + [m for m in mirrors if m != env]


def _fetch(mirror: str, name: str, dest: Path) -> None:
    """Copy ``name`` from ``mirror`` (http(s) URL or local directory) to ``dest``."""
    if mirror.startswith(("http://", "https://")):
        url = mirror.rstrip("/") + "/" + name
        request = urllib.request.Request(url, headers={"User-Agent": "vaelab"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out)
    else:
        src = Path(mirror.removeprefix("file://")).expanduser() / name
        shutil.copyfile(src, dest)


def fetch_archive(name: str, md5: str, mirrors: list[str], dest_dir: Path) -> str:
    """Fetch one archive from the first mirror that serves it with the right MD5; return that mirror."""
    dest = dest_dir / name
    failures = []
    for mirror in mirrors:
        try:
            with atomic_path(dest) as tmp:  # renamed onto dest only once the checksum matched
                _fetch(mirror, name, tmp)
                got = md5sum(tmp)
                if got != md5:
                    raise ValueError(f"checksum mismatch (MD5 {got}, expected {md5})")
            return mirror
        except (OSError, ValueError, urllib.error.URLError) as err:
            reason = getattr(err, "reason", None) or err
            log.warning("mirror %s failed for %s: %s; trying the next one", mirror, name, reason)
            failures.append(f"  - {mirror}: {reason}")
    raise DownloadError(
        f"could not download {name}: every mirror failed:\n" + "\n".join(failures) + "\n"
        f"On a machine without internet, set {MIRROR_ENV} to a folder (or http(s) URL) holding "
        f"the four MNIST archives, e.g. `export {MIRROR_ENV}=/path/to/mnist`."
    )


def download_mnist(root: str | Path, mirrors: list[str]) -> dict[str, str]:
    """Make sure ``root`` holds the four verified archives, unpacked; return {archive: source}.

    An archive already present with the right MD5 (and its unpacked file) is left alone, so a
    second call downloads nothing; its source is reported as ``"present"``.
    """
    if not mirrors:
        raise DownloadError(f"no MNIST mirrors configured: set {MIRROR_ENV} or data.mirrors in params.yaml")
    dest_dir = raw_dir(root)
    dest_dir.mkdir(parents=True, exist_ok=True)
    sources = {}
    for name, md5 in ARCHIVES:
        archive = dest_dir / name
        unpacked = dest_dir / name.removesuffix(".gz")
        if archive.exists() and md5sum(archive) == md5:
            sources[name] = "present"
            log.info("%s already present and verified; not downloaded again", name)
        else:
            sources[name] = fetch_archive(name, md5, mirrors, dest_dir)
            log.info("fetched %s from %s", name, sources[name])
            unpacked.unlink(missing_ok=True)
        if not unpacked.exists():
            with gzip.open(archive, "rb") as stream, atomic_path(unpacked) as tmp, tmp.open("wb") as out:
                shutil.copyfileobj(stream, out)
    return sources
