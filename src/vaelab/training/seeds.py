"""Train one model of params.yaml ``models`` once per seed: the seeds split into stacked groups, each group one
call of the one training loop (:func:`vaelab.training.loop.fit_stacked`), and the outputs the train stage writes.

The recording of a group's runs is passed in (a :class:`SeedLog`): training never imports tracking, and what it
writes does not depend on what is recorded (``tests/test_recording.py``). Each seed keeps its own initial
weights, data order, noise and Adam state, so its numbers do not depend on its neighbours except in the last bits
that BLAS computes differently for another matrix shape (README, "Determinism").
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ContextManager, Protocol

import torch

from vaelab import models
from vaelab.core.config import MNIST_TRAIN_SIZE, Params
from vaelab.core.device import PARALLEL_MIN_GFLOP, resolve_device
from vaelab.core.files import write_atomic, write_json
from vaelab.core.layout import Layout
from vaelab.data.mnist import load_split
from vaelab.training.loop import Epoch, fingerprint, fit_stacked, load_state, saved_extra

TRAIN_MFLOP_PER_IMAGE = 6.8  # the default MLP, forward and backward (benchmarks/speed.py): sizes the work


class SeedLog(Protocol):
    """What a group's training tells its recorder (:class:`vaelab.tracking.SeedRuns`)."""

    def runs(self, seeds: list[int], settings: dict, resumed_ids: list[str | None] | None,
             resumed_history: list[list[dict]] | None, train: torch.Tensor, test: torch.Tensor
             ) -> ContextManager[list[str]]: ...

    def epoch(self, run_ids: list[str], epochs: list[Epoch]) -> None: ...

    def checkpoints(self, run_ids: list[str], checkpoints: list[bytes]) -> None: ...


@dataclass(frozen=True)
class SeedResult:
    """One trained seed: its checkpoint's bytes, its per-epoch history, and the run that recorded it."""

    seed: int
    checkpoint: bytes
    history: list[Epoch]
    run_id: str
    state_path: str


def seed_groups(seeds: list[int], workers: int) -> list[list[int]]:
    """A model's seeds split into stacked groups of one size, in order: the largest size that divides the seeds
    into at least ``workers`` groups (3 seeds on 2 cores: three groups of one; 10 seeds: two of five).

    Groups of one size end together when the OS shares the cores among more groups than cores; groups of unequal
    size do not: 2 + 1 seeds over 2 cores left one core idle for a third of the stage (benchmarks/speed.py
    measures both layouts side by side)."""
    workers = max(1, min(len(seeds), workers))
    size = max(g for g in range(1, len(seeds) // workers + 1) if len(seeds) % g == 0)
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def gflop(params: Params, name: str) -> float:
    """The arithmetic of training every seed of ``name``: sizes the work for the stage's workers."""
    images = params.train.epochs * (params.data.train_size or MNIST_TRAIN_SIZE)
    return images * TRAIN_MFLOP_PER_IMAGE / 1e3 * len(params.seeds_of(name))


def seed_images(params: Params, name: str) -> tuple[int, float]:
    """(seed-images, GFLOP) of training every seed of ``name``: the training images of every epoch and seed, and
    their arithmetic (6 FLOPs per multiply-accumulate of the linear layers, forward and backward; the per-epoch
    test passes are not counted), the figures of the stage's logged throughput."""
    from vaelab.models.layers import StackedLinear

    net = models.build(models.spec_of(params, name))
    macs = sum(m.weight.shape[-2] * m.weight.shape[-1] for m in net.modules() if isinstance(m, StackedLinear))
    images = params.train.epochs * (params.data.train_size or MNIST_TRAIN_SIZE) * len(params.seeds_of(name))
    return images, 6 * macs * images / 1e9


def groups_for(params: Params, name: str) -> list[list[int]]:
    """All seeds stacked in one process on CUDA, or when the work is too small to pay for worker processes; else
    single-thread workers, at least one per core, each with its group of seeds stacked (:func:`seed_groups`)."""
    cores = os.cpu_count() or 1
    small = gflop(params, name) < PARALLEL_MIN_GFLOP * cores
    cuda = resolve_device(params.device).type == "cuda"
    return seed_groups(params.seeds_of(name), 1 if cuda or small else cores)


def earlier_parent(name: str, groups: list[list[int]], root: Path) -> str | None:
    """The model's run an interrupted attempt started, if a resumable state names it."""
    at = Layout(root)
    return next(filter(None, (saved_extra(at.resume_state(name, g)).get("parent_id") for g in groups)), None)


def output_dirs(name: str) -> list[str]:
    """The folders the stage's publishing empties first (no file of an earlier run survives in them)."""
    at = Layout()
    return [at.rel(at.model_dir(name)), at.rel(at.history_dir(name))]


def clear_outputs(name: str, root: Path) -> None:
    """An earlier result must not outlive a failed re-run (DVC removes a stage's outputs before running it; the
    same holds when the stage runs by hand)."""
    at = Layout(root)
    for path in (at.model_dir(name), at.history_dir(name), at.train_metrics(name)):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def train_group(params: Params, name: str, seeds: list[int], root: Path, log: SeedLog, parent_id: str | None
                ) -> list[SeedResult]:
    """Train ``seeds`` side by side as one stacked model (resuming an interrupted attempt), told to ``log``."""
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
    with log.runs(seeds, settings, resume["extra"].get("run_ids") if resume else None,
                  resume["history"] if resume else None, train.images, test.images) as run_ids:
        histories = fit_stacked(model, train, test, params.train, seeds=seeds, view=model.space.train_view,
                                name=f"{name}/seed{'-'.join(map(str, seeds))}", lr_param="train.lr", device=device,
                                state_path=state_path, state_fingerprint=state_fp, resume=resume,
                                extra={"run_ids": run_ids, "parent_id": parent_id},
                                on_epoch=lambda epochs: log.epoch(run_ids, epochs))
        trained = [model] if len(seeds) == 1 else models.unstack(model)
        checkpoints = [models.checkpoint_bytes(single.eval()) for single in trained]
        log.checkpoints(run_ids, checkpoints)
    return [SeedResult(seed, ckpt, history, rid, str(state_path))
            for seed, ckpt, history, rid in zip(seeds, checkpoints, histories, run_ids)]


def history_csv(history: list[Epoch]) -> str:
    rows = [{"epoch": e.epoch, **e.flat()} for e in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def final_numbers(results: list[SeedResult]) -> dict[str, dict]:
    """Per seed, the last epoch's train and test terms and diagnostics (``metrics/train/<model>.json``)."""
    return {f"seed{r.seed}": {"train": r.history[-1].train, "test": r.history[-1].test, **r.history[-1].diagnostics}
            for r in results}


def write_outputs(params: Params, name: str, results: list[SeedResult], staged: Path) -> None:
    """The checkpoints, histories and train metrics, into the staging folder ``staged``."""
    out = Layout(staged)
    for r in results:
        out.seed_dir(name, r.seed).mkdir(parents=True)
        out.checkpoint(name, r.seed).write_bytes(r.checkpoint)
        write_atomic(out.history(name, r.seed), history_csv(r.history))
    write_json(out.train_metrics(name), {"epochs": params.train.epochs, **final_numbers(results)})


def forget_states(results: list[SeedResult]) -> None:
    """Finished: the DVC outputs are now the result, so the resumable states go."""
    for r in results:
        Path(r.state_path).unlink(missing_ok=True)

