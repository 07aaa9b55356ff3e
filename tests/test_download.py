"""The download stage against real mirrors: a local folder, a loopback HTTP server, bad and dead ones."""

from __future__ import annotations

import functools
import http.server
import logging
import socket
import threading
from pathlib import Path

import pytest
from helpers import run

from vaelab.core.errors import DownloadError
from vaelab.data.download import ARCHIVES, MIRROR_ENV, download_mnist, md5sum, raw_dir


@pytest.fixture
def http_mirror():
    """Serve a folder over HTTP on 127.0.0.1 (a free port); yields a function folder -> URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def corrupted_copy(mirror: Path, dest: Path, bad: str = "train-labels-idx1-ubyte.gz") -> Path:
    """A mirror folder like ``mirror`` but with one archive's bytes altered."""
    dest.mkdir()
    for name, _ in ARCHIVES:
        (dest / name).symlink_to(mirror / name)
    (dest / bad).unlink()
    blob = bytearray((mirror / bad).read_bytes())
    blob[100] ^= 0xFF
    (dest / bad).write_bytes(bytes(blob))
    return dest


def assert_verified(root: Path) -> None:
    for name, md5 in ARCHIVES:
        assert md5sum(raw_dir(root) / name) == md5
        assert (raw_dir(root) / name.removesuffix(".gz")).stat().st_size > 0
    assert not list(raw_dir(root).glob(".*part")), "temporary files left behind"


def test_directory_mirror_then_nothing_to_download(tmp_path, mnist_mirror):
    sources = download_mnist(tmp_path, [str(mnist_mirror)])
    assert set(sources.values()) == {str(mnist_mirror)}
    assert_verified(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in raw_dir(tmp_path).iterdir()}
    again = download_mnist(tmp_path, ["http://127.0.0.1:9/never-used/"])
    assert set(again.values()) == {"present"}
    assert {p: p.stat().st_mtime_ns for p in raw_dir(tmp_path).iterdir()} == mtimes


def test_http_mirror(tmp_path, mnist_mirror, http_mirror):
    url = http_mirror(mnist_mirror)
    assert set(download_mnist(tmp_path, [url]).values()) == {url}
    assert_verified(tmp_path)


def test_corrupted_archive_is_rejected_and_next_mirror_used(tmp_path, mnist_mirror, http_mirror, caplog):
    bad = http_mirror(corrupted_copy(mnist_mirror, tmp_path / "bad"))
    with caplog.at_level(logging.WARNING, logger="vaelab.data.download"):
        sources = download_mnist(tmp_path / "data", [bad, str(mnist_mirror)])
    assert sources["train-labels-idx1-ubyte.gz"] == str(mnist_mirror)
    assert sources["train-images-idx3-ubyte.gz"] == bad
    assert "checksum mismatch" in caplog.text
    assert_verified(tmp_path / "data")


def test_only_bad_or_dead_mirrors_fail_clearly_and_leave_nothing(tmp_path, mnist_mirror, http_mirror):
    bad, dead = http_mirror(corrupted_copy(mnist_mirror, tmp_path / "bad")), dead_url()
    with pytest.raises(DownloadError) as err:
        download_mnist(tmp_path / "data", [bad, dead])
    message = str(err.value)
    assert bad in message and "checksum mismatch" in message
    assert dead in message and MIRROR_ENV in message
    assert not (raw_dir(tmp_path / "data") / "train-labels-idx1-ubyte.gz").exists()
    assert not list(raw_dir(tmp_path / "data").glob(".*part"))


@pytest.mark.slow
def test_stage_cli_exits_nonzero_with_one_message(project):
    proc = run(["python", "stages/download.py"], project, check=False, VAELAB_MNIST_MIRROR=dead_url())
    assert proc.returncode == 1
    assert "every mirror failed" in proc.stderr and MIRROR_ENV in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # drives the dvc CLI, as the other pipeline tests of the slow tier
def test_dvc_repro_download_then_nothing_changed(project):
    run(["dvc", "repro", "download"], project)
    assert_verified(project / "data")
    second = run(["dvc", "repro", "download"], project)
    assert "didn't change" in second.stdout or "up to date" in second.stdout
    assert "Running stage" not in second.stdout
