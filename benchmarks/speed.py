"""How close vaelab's training gets to this machine's arithmetic limit (not a test: numbers depend on the
machine and its load, so every fraction is of a peak measured in the same run).

Prints, in one run:

1. the fp32 matrix-product peak (2048³, all threads; and one single-thread process per core at once);
2. training throughput of the study's VAE (784-512-256-128-2 and back, Bernoulli decoder, batch 128, Adam) as
   the train stage runs a model's seeds, for S = 3 and S = 10 seeds: single-thread workers, each with a group of
   seeds stacked, groups of one size (:func:`vaelab.training.seeds.seed_groups`: 1 + 1 + 1 and 5 + 5 on two
   cores; the stage's layout) and, beside it, one all-thread process with every seed stacked; then the layout
   before (3 seeds dealt into one group per core: 2 + 1), and the pytorch/examples way
   (torchvision ``MNIST`` + ``ToTensor`` + ``DataLoader``, one model, all threads);

in images/s (seed-images: S seeds on N images are S·N) and GFLOP/s from the linear layers' multiply-accumulates
(6 FLOPs per MAC for forward and backward). ``make bench`` runs this, benchmarks/importance.py,
benchmarks/startup.py and benchmarks/study.py. Run from a project whose `download` stage has run::

    PYTHONPATH=src python benchmarks/speed.py            # or: make bench
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import click
import torch

from vaelab.core.device import matmul_peak

MODEL = {"kind": "vae", "likelihood": {"name": "bernoulli"}, "latent_dim": 2, "hidden": [512, 256, 128]}
BATCH = 128


def single_thread_peak(n: int = 2048) -> float:
    torch.set_num_threads(1)
    return matmul_peak(n)


def macs(module: torch.nn.Module) -> int:
    """Multiply-accumulates per image of a module's linear layers (one seed)."""
    from vaelab.models.layers import StackedLinear

    return sum(m.weight.shape[1] * m.weight.shape[2] for m in module.modules() if isinstance(m, StackedLinear))


def build(seed: int = 0):
    from vaelab import models

    return models.build(models.spec_from_dict(MODEL, "benchmark"), seed=seed)


def _train(seeds: list[int], threads: int, images: int, barrier=None) -> float:
    """Seconds for one epoch of ``images`` training images of ``seeds`` stacked, through the train stage's loop
    (after a short warm-up; ``barrier`` lines up parallel workers before the clock starts)."""
    from vaelab import models
    from vaelab.core.config import TrainConfig
    from vaelab.data.mnist import load_split
    from vaelab.training.loop import fit_stacked

    torch.set_num_threads(threads)
    train = load_split("data", "train", images)
    singles = [build(s) for s in seeds]
    model = singles[0] if len(seeds) == 1 else models.stack(singles)
    warm = tuple(t[: 10 * BATCH] for t in train)
    fit_stacked(model, warm, None, TrainConfig(1, BATCH, 1e-3), seeds=seeds, view=model.space.train_view)
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    fit_stacked(model, train, None, TrainConfig(1, BATCH, 1e-3), seeds=seeds, view=model.space.train_view)
    return time.perf_counter() - start


_BARRIER = None


def _init(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _worker(seeds: list[int], images: int) -> float:
    return _train(seeds, 1, images, _BARRIER)


def in_workers(groups: list[list[int]], images: int) -> float:
    """Seed-images/s of single-thread workers, one per group of stacked seeds, started together."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(groups))
    with ProcessPoolExecutor(len(groups), mp_context=context, initializer=_init, initargs=(barrier,)) as pool:
        seconds = list(pool.map(_worker, groups, [images] * len(groups)))
    return sum(len(g) for g in groups) * images / max(seconds)


def train_torchvision(images: int) -> float:
    """pytorch/examples `vae`: torchvision MNIST + ToTensor + DataLoader(shuffle=True); images/s."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from vaelab.training.optim import make_adam

    model = build()
    opt = make_adam(model.parameters(), 1e-3)
    loader = DataLoader(datasets.MNIST("data", train=True, download=False, transform=transforms.ToTensor()),
                        batch_size=BATCH, shuffle=True)
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        loss = model.loss(x.view(len(x), -1), y)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


def run(images: int = 12_800) -> dict:
    """Every figure of the module docstring, as a dict (printed by :func:`main`)."""
    from vaelab.training.seeds import seed_groups

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    peak = matmul_peak()
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        per_core = list(pool.map(single_thread_peak, [2048] * cores))
    flop = 6 * macs(build())
    out: dict = {"cores": cores, "peak_gflops": peak, "per_core_peak_gflops": per_core, "mflop_per_image": flop / 1e6}
    for s in (3, 10):
        seeds = list(range(s))
        out[f"S{s}_workers"] = in_workers(seed_groups(seeds, cores), images)
        torch.set_num_threads(cores)
        out[f"S{s}_one_process"] = s * images / _train(seeds, cores, images)
    # The layout before equal groups: the seeds dealt into one group per core, 2 + 1 on two cores.
    out["S3_uneven"] = in_workers([g for g in (list(range(3))[i::cores] for i in range(cores)) if g], images)
    torch.set_num_threads(cores)
    out["torchvision"] = train_torchvision(images)
    out["peak_gflops_after"] = matmul_peak()
    return out


def report(out: dict) -> list[str]:
    peak, flop = out["peak_gflops"], out["mflop_per_image"] * 1e6
    cores = out["cores"]

    def rate(label: str, key: str) -> str:
        gflops = out[key] * flop / 1e9
        return f"  {label}: {out[key]:8.0f} images/s, {gflops:5.0f} GFLOP/s = {gflops / peak:4.0%} of peak"

    return [
        f"fp32 matmul peak: 2048^3 with {cores} threads {peak:.0f} GFLOP/s (median of 7; {out['peak_gflops_after']:.0f} "
        f"at the end of the run); {cores} single-thread processes at once "
        f"{sum(out['per_core_peak_gflops']):.0f} GFLOP/s. Fractions are of the first {cores}-thread figure.",
        f"training the study's VAE ({out['mflop_per_image']:.2f} MFLOP per image), batch {BATCH}:",
        rate("S = 3 seeds, the train stage's layout (single-thread workers, groups of one size)", "S3_workers"),
        rate(f"S = 3 seeds, one {cores}-thread process, all stacked", "S3_one_process"),
        rate("S = 10 seeds, the train stage's layout (single-thread workers, groups of one size)", "S10_workers"),
        rate(f"S = 10 seeds, one {cores}-thread process, all stacked", "S10_one_process"),
        rate(f"S = 3 seeds dealt into {cores} stacked groups of unequal size (the stage's layout before)", "S3_uneven"),
        rate(f"pytorch/examples way (torchvision + DataLoader, one model, {cores} threads)", "torchvision"),
    ]


@click.command()
@click.option("--images", default=12_800, show_default=True, help="Training images per measurement (per seed).")
def main(images: int) -> None:
    click.echo(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, {os.cpu_count()} "
               f"cores, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    for line in report(run(images)):
        click.echo(line)


if __name__ == "__main__":
    main()
