"""Corrupted data files and checkpoints are detected when read; loading never runs code from a file."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run

from vaelab import models
from vaelab.core.errors import CheckpointError, DataError
from vaelab.data.download import raw_dir
from vaelab.data.mnist import load_split
from vaelab.training.loop import load_state


@pytest.fixture
def data_copy(tmp_path: Path, mnist_root: Path) -> Path:
    """A private, writable copy of the verified unpacked MNIST files."""
    dest = raw_dir(tmp_path / "data")
    dest.mkdir(parents=True)
    for f in raw_dir(mnist_root).iterdir():
        if not f.name.endswith(".gz"):
            shutil.copyfile(f, dest / f.name)
    return tmp_path / "data"


def test_intact_copy_loads(data_copy: Path) -> None:
    assert load_split(data_copy, "test").images.shape == (10_000, 784)


@pytest.mark.parametrize("damage", ["truncate", "header", "append", "labels"])
def test_damaged_mnist_file_is_detected_with_a_repair_hint(data_copy: Path, damage: str) -> None:
    split, name = ("test", "t10k-images-idx3-ubyte") if damage != "labels" else ("test", "t10k-labels-idx1-ubyte")
    path = raw_dir(data_copy) / name
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "header":
        blob[3] ^= 0xFF  # magic number 2051 -> something else
    elif damage == "append":
        blob += b"\0" * 16
    else:
        blob[8] = 200  # a label outside 0-9
    path.write_bytes(bytes(blob))

    with pytest.raises(DataError) as err:
        load_split(data_copy, split)
    assert "dvc repro download" in str(err.value)


class Exploit:
    """Unpickling this runs open(marker, "w"): the file appears only if code from the file executes."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw-pickle.pt"
    raw.write_bytes(pickle.dumps({"format": models.FORMAT, "x": Exploit(marker)}))
    zipped = tmp_path / "torch-save.pt"
    torch.save({"format": models.FORMAT, "x": Exploit(marker)}, zipped)
    # Prove the payload is live: an unsafe load does create the marker.
    torch.load(zipped, weights_only=False).get("x").close()
    assert marker.exists()
    marker.unlink()
    return marker, [raw, zipped]


def test_models_load_refuses_malicious_pickles_without_running_them(tmp_path: Path) -> None:
    marker, files = malicious_files(tmp_path)
    for path in files:
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            models.load(path)
    assert not marker.exists()


def test_resume_state_refuses_malicious_pickles_without_running_them(tmp_path: Path) -> None:
    marker, files = malicious_files(tmp_path)
    for path in files:
        assert load_state(path, "any") is None
        assert path.with_suffix(".stale").exists()  # set aside, never trusted
    assert not marker.exists()


def test_models_load_rejects_corrupted_and_foreign_checkpoints(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    models.save(models.build(models.spec_from_dict({"kind": "vae", "hidden": [16]}, "m")), good)
    assert models.load(good).cfg.hidden == [16]

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    mismatched = tmp_path / "mismatched.pt"
    payload = torch.load(good, weights_only=True)
    payload["config"] = payload["config"].replace('"latent_dim": 2', '"latent_dim": 5')  # canonical JSON text
    torch.save(payload, mismatched)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))

    for path, message in ((truncated, "not a readable checkpoint"), (foreign, "not a vaelab checkpoint"),
                          (mismatched, "does not match its config"), (garbage, "not a readable checkpoint"),
                          (tmp_path / "missing.pt", "no such checkpoint")):
        with pytest.raises(CheckpointError, match=message):
            models.load(path)


@pytest.mark.slow
@pytest.mark.parametrize("repair", [["dvc", "repro", "download"], ["dvc", "checkout", "--force", "data/MNIST/raw"]],
                         ids=["repro", "checkout"])
def test_the_suggested_repair_restores_damaged_data(project: Path, repair: list[str]) -> None:
    run(["dvc", "repro", "download"], project)
    damaged = raw_dir(project / "data") / "t10k-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with pytest.raises(DataError, match="dvc repro download"):
        load_split(project / "data", "test")

    run(repair, project)

    assert load_split(project / "data", "test").images.shape == (10_000, 784)


@pytest.mark.parametrize("stage, output", [("figures", "reports"), ("evaluate", "metrics/eval/vae_bce.json")])
def test_a_stage_handed_a_corrupt_checkpoint_names_it_first_and_keeps_its_outputs(
        tmp_path: Path, mnist_root: Path, stage: str, output: str) -> None:
    """The stage program, as DVC runs it, on a seed checkpoint that is not one: one line naming the file, exit 1,
    and its outputs as they were. The work dir has no judge or references, which evaluate reads next: an error
    about the checkpoint shows that it is read before any other work (it used to fail after 73 s of it)."""
    import sys

    from helpers import REPO
    from helpers.workdir import make_workdir

    workdir = make_workdir(tmp_path / "w", mnist_root, seeds=[1, 2], data__test_size=None)   # the study's counts
    for seed, content in ((1, b"\x00" * 64), (2, os.urandom(2048))):   # a truncated file, then noise
        checkpoint = workdir / "models" / "vae_bce" / f"seed{seed}" / "model.pt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(content)
    before = workdir / output
    if output.endswith(".json"):
        before.parent.mkdir(parents=True)
        before.write_text('{"from": "an earlier run"}')
    proc = run([sys.executable, str(REPO / "stages" / f"{stage}.py"), "--model", "vae_bce"], workdir, check=False,
               PYTHONPATH=str(REPO / "src"), VAELAB_TRACKING="off")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "models/vae_bce/seed1/model.pt: not a readable checkpoint" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    if output.endswith(".json"):
        assert before.read_text() == '{"from": "an earlier run"}'
    else:
        assert not before.exists()
