"""DVC stage `train@<model>`: train one model of params.yaml `models` once per seed, record each seed as an
MLflow run, and publish its checkpoints, per-seed metrics and histories.

Outputs (dvc.yaml):

- ``models/<model>/seed<k>/model.pt``: the checkpoint of seed k (:func:`vaelab.models.load`);
- ``metrics/train/<model>.json``: the final train and test loss terms per seed;
- ``plots/history/<model>/seed<k>.csv``: the per-epoch history of seed k.

Seeds train in parallel worker processes, one CPU thread each (:func:`vaelab.stage.parallel_map`: a
seed's weights never depend on how many trained beside it, so parallel is bit-identical to sequential).
On CUDA they train one after the other on the GPU. Outputs are published only once every seed has
trained and been recorded.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import click
import torch

from vaelab import models, tracking
from vaelab.config import MNIST_TRAIN_SIZE, Params, flatten, load_params
from vaelab.data import load_split
from vaelab.device import resolve_device
from vaelab.files import md5_of_bytes, write_atomic
from vaelab.loop import Epoch, fingerprint, fit, load_state
from vaelab.stage import parallel_map, publish, run_stage, staging

log = logging.getLogger("vaelab.train")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
TRAIN_MFLOP_PER_IMAGE = 6.8  # the default MLP, forward and backward (benchmarks/speed.py): sizes the work


def history_csv(history: list[Epoch]) -> str:
    rows = [{"epoch": e.epoch, **e.flat()} for e in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def train_seed(params: Params, name: str, seed: int, root: Path, experiment_id: str) -> dict:
    """Train one seed, record it in its own MLflow run; return the checkpoint bytes and history."""
    spec = models.spec_of(params, name)
    device = resolve_device(params.device)
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test", params.data.test_size)
    settings = {"model": spec.as_dict(), "train": asdict(params.train), "seed": seed,
                "train_size": params.data.train_size, "test_size": params.data.test_size}
    state_path = root / "checkpoints" / name / f"seed{seed}.pt"
    state_fp = fingerprint(settings, data=train.images)
    resume = load_state(state_path, state_fp)
    model = models.build(spec, seed=seed)
    run_id = resume["extra"].get("run_id") if resume else None
    tags = {**tracking.run_tags(name, f"train@{name}"), "seed": str(seed)}
    with tracking.tracked_run(f"{name}/seed{seed}", experiment_id, run_id, tags) as run:
        rid = run.info.run_id
        if rid != run_id:  # a new run
            tracking.log_params(rid, {**flatten(settings), "device": str(device)})
            size = len(train.images)
            # The source is the official archive (data/MNIST/raw holds it, MD5-verified); the digest is of the pixels.
            tracking.log_dataset(rid, train.images, f"mnist-train[:{size}]", f"{MNIST_URL}train-images-idx3-ubyte.gz",
                                 "training")
            test_name = "mnist-test" if params.data.test_size is None else f"mnist-test[:{len(test.images)}]"
            tracking.log_dataset(rid, test.images, test_name, f"{MNIST_URL}t10k-images-idx3-ubyte.gz", "testing")
        done = tracking.logged_steps(rid, "test_loss")  # epochs an interrupted process finished but did not log
        for epoch in resume["history"] if resume else []:
            if epoch["epoch"] not in done:
                tracking.log_metrics(rid, Epoch(**epoch).flat(), epoch["epoch"])
        history = fit(model, train, test, params.train, seed=seed, name=f"{name}/seed{seed}", device=device,
                      state_path=state_path, state_fingerprint=state_fp, resume=resume, extra={"run_id": rid},
                      on_epoch=lambda e: tracking.log_metrics(rid, e.flat(), e.epoch))
        checkpoint = models.checkpoint_bytes(model)
        tracking.set_tags(rid, {"vaelab.checkpoint_md5": md5_of_bytes(checkpoint)})
    return {"seed": seed, "checkpoint": checkpoint, "history": [asdict(e) for e in history], "run_id": rid,
            "state_path": str(state_path)}


def train_model(params: Params, name: str, root: Path = Path(".")) -> list[dict]:
    """Train every seed of model ``name``, then publish all outputs together."""
    models.spec_of(params, name)  # a clear ConfigError before any work
    device = resolve_device(params.device)
    experiment_id = tracking.setup(params.mlflow.experiment)  # fails fast if the server is down
    # An earlier result must not outlive a failed re-run (DVC removes a stage's outputs before running it;
    # the same holds when the stage runs by hand).
    for old in (f"models/{name}", f"plots/history/{name}", f"metrics/train/{name}.json"):
        path = root / old
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    # On the CPU one single-thread worker per seed (vaelab.stage.parallel_map); on CUDA one after another.
    calls = [(params, name, s, root, experiment_id) for s in params.seeds]
    images = params.train.epochs * (params.data.train_size or MNIST_TRAIN_SIZE)
    gflop = images * TRAIN_MFLOP_PER_IMAGE / 1e3
    results = [train_seed(*c) for c in calls] if device.type == "cuda" else parallel_map(train_seed, calls, gflop)
    with staging(root, "train") as staged:
        final = {}
        for r in results:
            history = [Epoch(**e) for e in r["history"]]
            (staged / "models" / name / f"seed{r['seed']}").mkdir(parents=True)
            (staged / "models" / name / f"seed{r['seed']}" / "model.pt").write_bytes(r["checkpoint"])
            write_atomic(staged / "plots" / "history" / name / f"seed{r['seed']}.csv", history_csv(history))
            final[f"seed{r['seed']}"] = {"train": history[-1].train, "test": history[-1].test, **history[-1].diagnostics}
        write_atomic(staged / "metrics" / "train" / f"{name}.json",
                     json.dumps({"epochs": params.train.epochs, **final}, indent=2) + "\n")
        test = load_split(root / "data", "test")
        example = test.images[:5]
        if models.REGISTRY[models.spec_of(params, name).kind].conditional:  # the label is a 785th column
            example = torch.cat([example, test.labels[:5, None].float()], dim=1)
        for r in results:  # in seed order: version numbers in the registry follow the seeds
            folder = staged / "models" / name / f"seed{r['seed']}"
            tracking.log_artifacts(r["run_id"], folder, "outputs")
            tags = {k: v for k, v in tracking.run_tags(name, f"train@{name}").items() if k != "dvc.stage"}
            tracking.log_model(r["run_id"], folder / "model.pt", example, f"vaelab-{name}",
                               {**tags, "seed": str(r["seed"]), "vaelab.checkpoint_md5": md5_of_bytes(r["checkpoint"])})
        publish(staged, root, replace=[f"models/{name}", f"plots/history/{name}"])
    for r in results:
        Path(r["state_path"]).unlink(missing_ok=True)  # finished: the DVC outputs are now the result
    return results


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Train MODEL once per seed, record each seed in MLflow and write models/, metrics/ and plots/ outputs."""
    run_stage(f"train@{name}", lambda: train_model(load_params(params_path), name))


if __name__ == "__main__":
    main()
