"""DVC stage `train@<model>`: train one model of params.yaml `models` once per seed, record each seed as an
MLflow run, and publish its checkpoints, per-seed metrics and histories.

Outputs (dvc.yaml):

- ``models/<model>/seed<k>/model.pt``: the checkpoint of seed k (:func:`vaelab.models.load`);
- ``metrics/train/<model>.json``: the final train and test loss terms per seed;
- ``plots/history/<model>/seed<k>.csv``: the per-epoch history of seed k.

The seeds train as stacked models (:func:`vaelab.loop.fit_stacked`): on the CPU one single-thread worker
process per core, each training its share of the seeds side by side (:func:`vaelab.stage.parallel_map`); on
CUDA, or when the work is small, all seeds in one process. Each seed keeps its own initial weights, data order,
noise and Adam state, so its numbers do not depend on its neighbours except in the last bits that BLAS
computes differently for another matrix shape (README, "Determinism"). Outputs are published only once every
seed has trained and been recorded.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import click
import torch

from vaelab import models, stats, tracking
from vaelab.config import MNIST_TRAIN_SIZE, Params, flatten, load_params
from vaelab.data import load_split
from vaelab.device import resolve_device
from vaelab.files import md5_of_bytes, write_atomic
from vaelab.layout import Layout
from vaelab.loop import Epoch, fingerprint, fit_stacked, load_state, saved_extra
from vaelab.model_cards import describe
from vaelab.stage import PARALLEL_MIN_GFLOP, parallel_map, publish, run_stage, staging

log = logging.getLogger("vaelab.train")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
TRAIN_MFLOP_PER_IMAGE = 6.8  # the default MLP, forward and backward (benchmarks/speed.py): sizes the work


def seed_groups(seeds: list[int], workers: int) -> list[list[int]]:
    """A model's seeds split into ``workers`` stacked groups, dealt out in order (the first groups one larger)."""
    workers = max(1, min(len(seeds), workers))
    size, extra = divmod(len(seeds), workers)
    bounds = [0]
    for i in range(workers):
        bounds.append(bounds[-1] + size + (i < extra))
    return [seeds[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def epoch_metrics(e: Epoch) -> dict[str, float]:
    return tracking.epoch_metrics(e.train, e.test, e.diagnostics)


def history_csv(history: list[Epoch]) -> str:
    rows = [{"epoch": e.epoch, **e.flat()} for e in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def log_data(run_id: str, train: torch.Tensor, test: torch.Tensor, whole_test_set: bool) -> None:
    """The training and test images as the run's dataset inputs (the runs table's Dataset column). The source is
    the official archive (data/MNIST/raw holds it, MD5-verified); the digest is of the pixels."""
    tracking.log_dataset(run_id, train, f"mnist-train[:{len(train)}]", f"{MNIST_URL}train-images-idx3-ubyte.gz", "training")
    tracking.log_dataset(run_id, test, "mnist-test" if whole_test_set else f"mnist-test[:{len(test)}]",
                         f"{MNIST_URL}t10k-images-idx3-ubyte.gz", "testing")


def train_group(params: Params, name: str, seeds: list[int], root: Path, experiment_id: str, parent_id: str
                ) -> list[dict]:
    """Train ``seeds`` side by side as one stacked model, each seed recorded in its own MLflow run nested under
    the model's run ``parent_id``; return each seed's checkpoint bytes and history."""
    spec = models.spec_of(params, name)
    device = resolve_device(params.device)
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test", params.data.test_size)
    settings = {"model": spec.as_dict(), "train": asdict(params.train), "seeds": seeds,
                "train_size": params.data.train_size, "test_size": params.data.test_size}
    state_path = Layout(root).resume_state(name, seeds)
    state_fp = fingerprint(settings, data=train.images)
    resume = load_state(state_path, state_fp)
    singles = [models.build(spec, seed=seed) for seed in seeds]
    model = singles[0] if len(seeds) == 1 else models.stack(singles)
    old_ids = resume["extra"].get("run_ids") if resume else [None] * len(seeds)
    tags = [{**tracking.run_tags(name, f"train@{name}"), "seed": str(seed), "vaelab.run": "seed",
             "mlflow.parentRunId": parent_id, "mlflow.note.content": f"Seed {seed} of model {name}; its parent "
             f"run `{name}` holds the mean over seeds.\n\n{describe(params, name)}"} for seed in seeds]
    with tracking.tracked_runs([f"{name}/seed{seed}" for seed in seeds], experiment_id, old_ids, tags) as run_ids:
        for seed, rid, old in zip(seeds, run_ids, old_ids):
            if rid == old:  # resumed: nest it under this attempt's model run
                tracking.set_tags(rid, {"mlflow.parentRunId": parent_id})
            else:  # a new run
                tracking.log_params(rid, {**flatten({**settings, "seeds": None, "seed": seed}), "device": str(device)})
                log_data(rid, train.images, test.images, params.data.test_size is None)
        if seeds[0] == params.seeds_of(name)[0] and tracking.logged_dataset(parent_id, "training") is None:
            log_data(parent_id, train.images, test.images, params.data.test_size is None)  # the model's run shows them too
        for i, rid in enumerate(run_ids):  # epochs an interrupted process finished but did not log
            done = tracking.logged_steps(rid, tracking.EPOCH_KEY)
            for epoch in resume["history"][i] if resume else []:
                if epoch["epoch"] not in done:
                    tracking.log_metrics(rid, epoch_metrics(Epoch(**epoch)), epoch["epoch"])

        def record(epochs: list[Epoch]) -> None:
            for rid, e in zip(run_ids, epochs):
                tracking.log_metrics(rid, epoch_metrics(e), e.epoch)

        histories = fit_stacked(model, train, test, params.train, seeds=seeds, view=model.space.train_view,
                                name=f"{name}/seed{'-'.join(map(str, seeds))}", lr_param="train.lr", device=device, state_path=state_path,
                                state_fingerprint=state_fp, resume=resume, extra={"run_ids": run_ids, "parent_id": parent_id},
                                on_epoch=record)
        trained = [model] if len(seeds) == 1 else models.unstack(model)
        results = []
        for seed, rid, single, history in zip(seeds, run_ids, trained, histories):
            checkpoint = models.checkpoint_bytes(single.eval())
            tracking.set_tags(rid, {"vaelab.checkpoint_md5": md5_of_bytes(checkpoint)})
            results.append({"seed": seed, "checkpoint": checkpoint, "history": [asdict(e) for e in history],
                            "run_id": rid, "state_path": str(state_path)})
    return results


def train_model(params: Params, name: str, root: Path = Path(".")) -> list[dict]:
    """Train every seed of model ``name``, then publish all outputs together."""
    models.spec_of(params, name)  # a clear ConfigError before any work
    device = resolve_device(params.device)
    experiment_id = tracking.setup(params.mlflow.experiment)  # fails fast if the server is down
    # An earlier result must not outlive a failed re-run (DVC removes a stage's outputs before running it;
    # the same holds when the stage runs by hand).
    at = Layout(root)
    for path in (at.model_dir(name), at.history_dir(name), at.train_metrics(name)):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    # All seeds stacked in one process on CUDA, or when the work is too small to pay for worker processes;
    # else one single-thread worker per core, each with its share of the seeds stacked (vaelab.stage.parallel_map).
    images = params.train.epochs * (params.data.train_size or MNIST_TRAIN_SIZE)
    seeds = params.seeds_of(name)
    gflop = images * TRAIN_MFLOP_PER_IMAGE / 1e3 * len(seeds)
    small = gflop < PARALLEL_MIN_GFLOP * (os.cpu_count() or 1)
    groups = seed_groups(seeds, 1 if device.type == "cuda" or small else os.cpu_count() or 1)
    # The model's parent run: the one an interrupted attempt started, if a resumable state names it.
    earlier = next(filter(None, (saved_extra(at.resume_state(name, g)).get("parent_id") for g in groups)), None)
    parent_tags = {**tracking.run_tags(name, f"train@{name}"), "vaelab.run": "model",
                   "mlflow.note.content": describe(params, name)}
    with tracking.tracked_runs([name], experiment_id, [earlier], [parent_tags]) as (parent_id,):
        calls = [(params, name, g, root, experiment_id, parent_id) for g in groups]
        results = [r for group in parallel_map(train_group, calls, gflop / len(groups)) for r in group]
        log_across_seeds(parent_id, [[Epoch(**e) for e in r["history"]] for r in results])
        publish_model(params, name, root, results)
    for r in results:
        Path(r["state_path"]).unlink(missing_ok=True)  # finished: the DVC outputs are now the result
    return results


def log_across_seeds(parent_id: str, histories: list[list[Epoch]]) -> None:
    """Per epoch, the mean over seeds of every number and its interval's half-width, to the model's run."""
    done = tracking.logged_steps(parent_id, tracking.EPOCH_KEY)
    for epochs in zip(*histories):
        if epochs[0].epoch not in done:
            tracking.log_metrics(parent_id, tracking.across_seeds(stats.across_seeds([epoch_metrics(e) for e in epochs])), epochs[0].epoch)


def publish_model(params: Params, name: str, root: Path, results: list[dict]) -> None:
    """Write the checkpoints, histories and train metrics; log each seed's outputs and MLflow Model, and give the
    registered model its description and aliases (``seed<k>``, and ``champion``: the lowest final test loss)."""
    at = Layout(root)
    with staging(root, "train") as staged:
        out, final = Layout(staged), {}
        for r in results:
            history = [Epoch(**e) for e in r["history"]]
            out.seed_dir(name, r["seed"]).mkdir(parents=True)
            out.checkpoint(name, r["seed"]).write_bytes(r["checkpoint"])
            write_atomic(out.history(name, r["seed"]), history_csv(history))
            final[f"seed{r['seed']}"] = {"train": history[-1].train, "test": history[-1].test, **history[-1].diagnostics}
        write_atomic(out.train_metrics(name),
                     json.dumps({"epochs": params.train.epochs, **final}, indent=2) + "\n")
        test = load_split(root / "data", "test")
        example = test.images[:5]
        if models.REGISTRY[models.spec_of(params, name).kind].conditional:  # the label is a 785th column
            example = torch.cat([example, test.labels[:5, None].float()], dim=1)
        versions, aliases, losses = {}, {}, {}
        for r in results:  # in seed order: version numbers in the registry follow the seeds
            seed = r["seed"]
            tracking.log_artifacts(r["run_id"], out.seed_dir(name, seed), "outputs")
            tracking.log_artifacts(r["run_id"], out.history(name, seed), "outputs")
            tags = {k: v for k, v in tracking.run_tags(name, f"train@{name}").items() if k != "dvc.stage"}
            version, _ = tracking.log_model(r["run_id"], out.checkpoint(name, seed), example, f"{name}-seed{seed}",
                                            f"vaelab-{name}", {**tags, "seed": str(seed),
                                                               "vaelab.checkpoint_md5": md5_of_bytes(r["checkpoint"])})
            losses[version] = final[f"seed{seed}"]["test"].get("loss", float("nan"))
            versions[version] = (f"Seed {seed} of {name}, trained by run {r['run_id']}: final test loss {losses[version]:.6g} "
                                 "(the model's own loss, per image).")
            aliases[f"seed{seed}"] = version
        if not any(math.isnan(v) for v in losses.values()):
            aliases["champion"] = min(losses, key=losses.get)
        tracking.describe_registered(f"vaelab-{name}", describe(params, name) + "\n\nAliases: `seed<k>` is seed k's "
                                     "version; `champion` the seed with the lowest final test loss.", versions, aliases)
        publish(staged, root, replace=[at.rel(at.model_dir(name)), at.rel(at.history_dir(name))])


@click.command()
@click.option("--model", "name", required=True, help="A key of `models` in params.yaml, e.g. vae_bce.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Params file.")
def main(name: str, params_path: str) -> None:
    """Train MODEL once per seed, record each seed in MLflow and write models/, metrics/ and plots/ outputs."""
    run_stage(f"train@{name}", lambda: train_model(load_params(params_path), name))


if __name__ == "__main__":
    main()
