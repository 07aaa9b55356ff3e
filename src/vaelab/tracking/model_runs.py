"""The run tree of one model: a parent run per model (``train@<model>``) holding the mean over seeds,
one nested run per seed holding its params, datasets, per-epoch metrics, outputs and MLflow Model, and the
registered model's description and aliases.

A stage opens the tree (:func:`model_runs`) and hands its :class:`SeedRuns` to the training workers: it is
picklable (ids and strings only) and each worker opens the runs of its own seeds (resuming an interrupted
attempt's runs). Training calls it through :class:`vaelab.training.seeds.SeedLog`; nothing it does changes
what training writes.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Iterator

from vaelab.core.config import Params, flatten
from vaelab.core.files import md5_of_bytes, md5_of_file
from vaelab.core.layout import Layout
from vaelab.core.stats import across_seeds as mean_and_interval
from vaelab.tracking.keys import EPOCH_KEY, across_seeds, epoch_metrics, eval_metrics
from vaelab.tracking.provenance import in_experiment, log_dataset, run_tags
from vaelab.tracking.registry import MODEL_ID_TAG, describe_registered, log_model, run_for_checkpoint
from vaelab.tracking.runs import (log_artifacts, log_metrics, log_params, logged_dataset, logged_steps, run_tag, set_tags,
                                  tracked_runs)
from vaelab.tracking.store import setup

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _numbers(epoch: Any) -> dict[str, float]:
    return epoch_metrics(epoch.train, epoch.test, epoch.diagnostics)


class SeedRuns:
    """The seed runs of one model under its parent run ``parent_id`` (a training worker's recorder)."""

    def __init__(self, name: str, experiment_id: str, parent_id: str, first_seed: int, note: str, device: str,
                 whole_test_set: bool) -> None:
        self.name, self.stage, self.experiment_id, self.parent_id = name, f"train@{name}", experiment_id, parent_id
        self.first_seed, self.note, self.device, self.whole_test_set = first_seed, note, device, whole_test_set

    def _log_data(self, run_id: str, train: Any, test: Any) -> None:
        """The training and test images as the run's dataset inputs (the runs table's Dataset column). The source
        is the official archive (data/MNIST/raw holds it, MD5-verified); the digest is of the pixels."""
        log_dataset(run_id, train, f"mnist-train[:{len(train)}]", f"{MNIST_URL}train-images-idx3-ubyte.gz", "training")
        log_dataset(run_id, test, "mnist-test" if self.whole_test_set else f"mnist-test[:{len(test)}]",
                    f"{MNIST_URL}t10k-images-idx3-ubyte.gz", "testing")

    @contextlib.contextmanager
    def runs(self, seeds: list[int], settings: dict, resumed_ids: list[str | None] | None,
             resumed_history: list[list[dict]] | None, train: Any, test: Any) -> Iterator[list[str]]:
        """Open (or resume) one run per seed; log what a new run needs and the epochs a resumed one missed."""
        old_ids = resumed_ids or [None] * len(seeds)
        tags = [{**run_tags(self.name, self.stage), "seed": str(seed), "vaelab.run": "seed",
                 "mlflow.parentRunId": self.parent_id, "mlflow.note.content": f"Seed {seed} of model {self.name}; "
                 f"its parent run `{self.name}` holds the mean over seeds.\n\n{self.note}"} for seed in seeds]
        with tracked_runs([f"{self.name}/seed{seed}" for seed in seeds], self.experiment_id, old_ids, tags) as run_ids:
            for seed, rid, old in zip(seeds, run_ids, old_ids):
                if rid == old:  # resumed: nest it under this attempt's model run
                    set_tags(rid, {"mlflow.parentRunId": self.parent_id})
                else:
                    log_params(rid, {**flatten({**settings, "seeds": None, "seed": seed}), "device": self.device})
                    self._log_data(rid, train, test)
            if seeds[0] == self.first_seed and logged_dataset(self.parent_id, "training") is None:
                self._log_data(self.parent_id, train, test)  # the model's run shows them too
            for rid, history in zip(run_ids, resumed_history or [[] for _ in seeds]):
                done = logged_steps(rid, EPOCH_KEY)  # epochs an interrupted process finished but did not log
                for epoch in history:
                    if epoch["epoch"] not in done:
                        log_metrics(rid, epoch_metrics(epoch["train"], epoch["test"], epoch.get("diagnostics", {})),
                                    epoch["epoch"])
            yield run_ids

    def epoch(self, run_ids: list[str], epochs: list[Any]) -> None:
        for rid, e in zip(run_ids, epochs):
            log_metrics(rid, _numbers(e), e.epoch)

    def checkpoints(self, run_ids: list[str], checkpoints: list[bytes]) -> None:
        for rid, checkpoint in zip(run_ids, checkpoints):
            set_tags(rid, {"vaelab.checkpoint_md5": md5_of_bytes(checkpoint)})

    def across_seeds(self, histories: list[list[Any]]) -> None:
        """Per epoch, the mean over seeds of every number and its interval's half-width, to the model's run."""
        done = logged_steps(self.parent_id, EPOCH_KEY)
        for epochs in zip(*histories):
            if epochs[0].epoch not in done:
                log_metrics(self.parent_id, across_seeds(mean_and_interval([_numbers(e) for e in epochs])),
                            epochs[0].epoch)

    def outputs(self, results: list[Any], staged: Path, example: Any) -> None:
        """Log each seed's outputs and MLflow Model from the staging folder, and give the registered model its
        description and aliases (``seed<k>``, and ``champion``: the lowest final test loss).

        In a DVC experiment (``dvc exp run``, a sweep) the MLflow Models are logged but not registered: the
        registry and its aliases name the study's models, not a 3-epoch point of a grid (the runs carry the
        experiment's name and changed params: :func:`vaelab.tracking.provenance.run_tags`)."""
        out, name = Layout(staged), self.name
        registered = None if in_experiment() else f"vaelab-{name}"
        versions, aliases, losses = {}, {}, {}
        for r in results:  # in seed order: version numbers in the registry follow the seeds
            log_artifacts(r.run_id, out.seed_dir(name, r.seed), "outputs")
            log_artifacts(r.run_id, out.history(name, r.seed), "outputs")
            tags = {k: v for k, v in run_tags(name, self.stage).items() if k != "dvc.stage"}
            version, _ = log_model(r.run_id, out.checkpoint(name, r.seed), example, f"{name}-seed{r.seed}",
                                   registered, {**tags, "seed": str(r.seed),
                                                "vaelab.checkpoint_md5": md5_of_bytes(r.checkpoint)})
            if version is None:
                continue
            losses[version] = r.history[-1].test.get("loss", float("nan"))
            versions[version] = (f"Seed {r.seed} of {name}, trained by run {r.run_id}: final test loss "
                                 f"{losses[version]:.6g} (the model's own loss, per image).")
            aliases[f"seed{r.seed}"] = version
        if not versions:
            return
        if not any(math.isnan(v) for v in losses.values()):
            aliases["champion"] = min(losses, key=losses.get)
        describe_registered(f"vaelab-{name}", self.note + "\n\nAliases: `seed<k>` is seed k's version; `champion` "
                            "the seed with the lowest final test loss.", versions, aliases)


@contextlib.contextmanager
def model_runs(params: Params, name: str, earlier_parent: str | None) -> Iterator[SeedRuns]:
    """Open model ``name``'s parent run in params' ``mlflow.experiment`` (failing fast if the store is down), or
    resume ``earlier_parent``; end it FINISHED, FAILED or KILLED with the block."""
    from vaelab.models.cards import describe  # here: importing tracking must not import torch

    experiment_id = setup(params.mlflow.experiment)
    note = describe(params, name)
    tags = {**run_tags(name, f"train@{name}"), "vaelab.run": "model", "mlflow.note.content": note}
    with tracked_runs([name], experiment_id, [earlier_parent], [tags]) as (parent_id,):
        yield SeedRuns(name, experiment_id, parent_id, params.seeds_of(name)[0], note, params.device,
                       params.data.test_size is None)


class CheckpointRuns:
    """The runs that trained a model's checkpoints (found by each checkpoint's md5, or made and linked to it), for
    the stages after training to log into: its evaluation, its figures."""

    def __init__(self, params: Params, name: str, stage: str, root: Path = Path(".")) -> None:
        self.experiment_id = setup(params.mlflow.experiment)  # fails fast if the store is down
        self.name, self.stage, self.at = name, stage, Layout(root)

    def run_of(self, seed: int) -> str:
        return run_for_checkpoint(self.experiment_id, self.name, seed, md5_of_file(self.at.checkpoint(self.name, seed)),
                                  self.stage)

    def evaluation(self, settings: dict[str, Any], per_seed: dict[int, dict]) -> None:
        """Each seed's numbers (``eval/...``) to exactly the run that trained its checkpoint (and to that run's
        MLflow Model on its test set: the logged model's page lists them); their mean and interval to the model's
        run (a checkpoint pulled from a DVC remote into a fresh store has none)."""
        run_ids = []
        for seed, metrics in per_seed.items():
            rid = self.run_of(seed)
            log_params(rid, {f"evaluate.{k}": v for k, v in flatten(settings).items()})
            log_metrics(rid, eval_metrics(flatten(metrics)), model_id=run_tag(rid, MODEL_ID_TAG),
                        dataset=logged_dataset(rid, "testing"))
            run_ids.append(rid)
        parent = run_tag(run_ids[0], "mlflow.parentRunId")
        if parent:
            per_run = [eval_metrics(flatten(m)) for m in per_seed.values()]
            every = set.intersection(*(set(r) for r in per_run))   # a number some seed lacks has no mean
            log_metrics(parent, across_seeds(mean_and_interval([{k: r[k] for k in r if k in every} for r in per_run])))

    def figures(self, seed: int, folder: Path) -> str:
        """A seed's figures to the run that trained its checkpoint, and to the model's run; returns the run id."""
        rid = self.run_of(seed)
        log_artifacts(rid, folder, "figures")
        parent = run_tag(rid, "mlflow.parentRunId")
        if parent:
            log_artifacts(parent, folder, "figures")
        return rid
