"""The training stage's I/O around :func:`vaelab.train.fit`: data in, outputs and an MLflow run out.

Outputs for model ``name`` (paths relative to the project root):

- ``models/<name>/model.pt``: the checkpoint (:func:`vaelab.models.load`);
- ``metrics/<name>.json``: final train and test loss and its terms;
- ``plots/<name>/history.csv``: the per-epoch history.

They are written only after training and tracking succeeded, so a failed stage leaves nothing that
DVC could take for a result. Tracking failures fail the stage (policy: no silent gaps); the
per-epoch resume checkpoint in ``checkpoints/`` means a re-run loses no finished epoch.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from vaelab import models, tracking
from vaelab.config import Params, flatten
from vaelab.data import load_split
from vaelab.files import write_atomic
from vaelab.train import Epoch, fingerprint, fit, load_state, resolve_device

log = logging.getLogger(__name__)
# Staged file -> where dvc.yaml declares it.
OUTPUTS = {"model.pt": "models/{name}/model.pt", "history.csv": "plots/{name}/history.csv",
           "metrics.json": "metrics/{name}.json"}


def history_csv(history: list[Epoch]) -> str:
    rows = [{"epoch": e.epoch, **e.flat()} for e in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def final_metrics(history: list[Epoch]) -> dict:
    last = history[-1]
    return {"epochs": last.epoch, "train": last.train, "test": last.test}


def train_model(params: Params, name: str, root: Path = Path(".")) -> list[Epoch]:
    """Train model ``name`` of the experiment matrix, record it in MLflow, and write its outputs."""
    import mlflow

    cfg = params.model(name)
    device = resolve_device(params.device)
    experiment_id = tracking.setup(params.mlflow.experiment)  # fails fast if the server is down
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test")
    for dest in OUTPUTS.values():  # an earlier result must not outlive a failed re-run (as under DVC)
        (root / dest.format(name=name)).unlink(missing_ok=True)

    settings = {"model": asdict(cfg), "train": asdict(params.train), "seed": params.seed,
                "train_size": params.data.train_size}
    state_path = root / "checkpoints" / f"{name}.pt"
    state_fp = fingerprint(settings, data=train.images)
    resume = load_state(state_path, state_fp)
    model = models.build(cfg, seed=params.seed)

    with tempfile.TemporaryDirectory(dir=root, prefix=".train-") as tmp:
        staging = Path(tmp)
        run_id = resume["extra"].get("run_id") if resume else None
        with tracking.tracked_run(name, experiment_id, run_id) as run:
            with tracking.recording("recording params and resumed epochs"):
                if run.info.run_id != run_id:  # a new run
                    mlflow.log_params({**flatten(settings), "device": str(device)})
                # Record the epochs an interrupted process finished (checkpointed) but did not log.
                done = tracking.logged_steps(run.info.run_id, "test_loss")
                for epoch in resume["history"] if resume else []:
                    if epoch["epoch"] not in done:
                        mlflow.log_metrics(Epoch(**epoch).flat(), step=epoch["epoch"])

            def log_epoch(e: Epoch) -> None:
                with tracking.recording(f"recording epoch {e.epoch}"):
                    mlflow.log_metrics(e.flat(), step=e.epoch)

            history = fit(
                model, train.images, test.images, params.train, seed=params.seed, name=name, device=device,
                state_path=state_path, state_fingerprint=state_fp, resume=resume,
                extra={"run_id": run.info.run_id}, on_epoch=log_epoch,
            )
            # Outputs are staged first and published only once MLflow has them and the run is FINISHED.
            models.save(model, staging / "model.pt")
            write_atomic(staging / "history.csv", history_csv(history))
            write_atomic(staging / "metrics.json", json.dumps(final_metrics(history), indent=2) + "\n")
            with tracking.recording("uploading the outputs"):
                mlflow.log_artifacts(str(staging), artifact_path="outputs")
        publish(staging, root, name)
    state_path.unlink(missing_ok=True)  # finished: the DVC outputs are now the result
    return history


def publish(staging: Path, root: Path, name: str) -> None:
    """Move the staged files to where dvc.yaml declares them."""
    for src, dest in OUTPUTS.items():
        target = root / dest.format(name=name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / src, target)
