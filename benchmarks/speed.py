"""How close vaelab gets to this machine's arithmetic limit (not a test: numbers depend on the machine and its load).

One run prints, on the same machine:

1. the measured fp32 matrix-product peak (2048³, all threads);
2. vaelab's training throughput as the train stage runs it (one single-thread worker per core, each training
   its own model, as the seeds do), in images/s and as a fraction of the peak, and one all-thread process;
3. the same model trained the way pytorch/examples `vae` does it (torchvision `MNIST` + `ToTensor` +
   `DataLoader`, all threads), and the ratio;
4. the evaluation's importance-weighted decoder passes (K samples per image) as a fraction of the peak.

FLOPs are counted from the model's linear layers: 2 per multiply-accumulate forward, 6 forward+backward.
Run from a project whose `download` stage has run::

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

MODEL = {"kind": "vae", "likelihood": {"name": "bernoulli"}, "latent_dim": 2, "hidden": [512, 256, 128]}


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """Median GFLOP/s of an n×n×n float32 matrix product with the current number of threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return sorted(rates)[len(rates) // 2]


def single_thread_peak(n: int = 2048) -> float:
    torch.set_num_threads(1)
    return matmul_peak(n)


def macs(module: torch.nn.Module) -> int:
    """Multiply-accumulates per image of a module's linear layers."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


def build():
    from vaelab import models

    return models.build(models.spec_from_dict(MODEL, "benchmark"), seed=0)


def train_vaelab(images: int, threads: int, seed: int = 0) -> float:
    """Seconds to train one epoch of ``images`` with vaelab's loop (in-memory batches, no per-step host sync)."""
    from vaelab.config import TrainConfig
    from vaelab.data import Split, load_split
    from vaelab.loop import fit

    torch.set_num_threads(threads)
    train = load_split("data", "train", images)
    test = load_split("data", "test")
    model = build()
    start = time.perf_counter()
    fit(model, train, Split(test.images[:10], test.labels[:10]), TrainConfig(epochs=1, batch_size=128, lr=1e-3),
        seed=seed)
    return time.perf_counter() - start


def train_torchvision(images: int) -> float:
    """pytorch/examples `vae`: torchvision MNIST + ToTensor + DataLoader(shuffle=True); images/s."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(datasets.MNIST("data", train=True, download=False, transform=transforms.ToTensor()),
                        batch_size=128, shuffle=True)
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


def evaluation_gflops(images: int, k: int) -> tuple[float, float]:
    """GFLOP/s and seconds of the IWAE bound (K decoder passes per image) on ``images`` test images."""
    from vaelab import metrics
    from vaelab.data import load_split

    model = build().eval()
    x = load_split("data", "test").images[:images]
    start = time.perf_counter()
    metrics.likelihood_bounds(model, x, None, k, torch.Generator().manual_seed(0))
    took = time.perf_counter() - start
    return 2 * (images * k * macs(model.decoder) + images * macs(model.encoder)) / took / 1e9, took


@click.command()
@click.option("--images", default=15_000, show_default=True, help="Training images per measurement.")
@click.option("--eval-images", default=1_000, show_default=True)
@click.option("--k", default=200, show_default=True, help="Importance samples per image.")
def main(images: int, eval_images: int, k: int) -> None:
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    peak = matmul_peak()
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        per_core = list(pool.map(single_thread_peak, [2048] * cores))
    flops = 6 * macs(build())
    click.echo(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {cores} cores, "
               f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    click.echo(f"fp32 matmul peak: 2048^3 with {cores} threads {peak:.0f} GFLOP/s (median of 7); {cores} single-thread "
               f"processes at once {sum(per_core):.0f} GFLOP/s ({' + '.join(f'{p:.0f}' for p in per_core)}). "
               f"Fractions below are of the {cores}-thread figure [of the per-core sum].")
    click.echo(f"the model: {flops / 1e6:.2f} MFLOP per training image (6 per multiply-accumulate)")
    both = sum(per_core)

    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds = list(pool.map(train_vaelab, [images] * cores, [1] * cores, range(cores)))
    per_worker = [images / s for s in seconds]
    total = sum(per_worker)
    click.echo(f"vaelab training, {cores} single-thread workers (as the train stage runs seeds): {total:.0f} images/s "
               f"({' + '.join(f'{v:.0f}' for v in per_worker)}) = {total * flops / 1e9:.0f} GFLOP/s = "
               f"{total * flops / 1e9 / peak:.0%} [{total * flops / 1e9 / both:.0%}] of peak")
    one = images / train_vaelab(images, cores)
    click.echo(f"vaelab training, one {cores}-thread process: {one:.0f} images/s = {one * flops / 1e9 / peak:.0%} "
               f"[{one * flops / 1e9 / both:.0%}] of peak")
    torch.set_num_threads(cores)
    base = train_torchvision(images)
    click.echo(f"pytorch/examples style (torchvision MNIST + ToTensor + DataLoader, {cores} threads): {base:.0f} "
               f"images/s; vaelab's train stage: {total / base:.1f}x")
    gflops, took = evaluation_gflops(eval_images, k)
    click.echo(f"evaluation, IWAE K={k} on {eval_images} images ({cores} threads): {took:.1f} s, {gflops:.0f} GFLOP/s "
               f"= {gflops / peak:.0%} [{gflops / both:.0%}] of peak")


if __name__ == "__main__":
    main()
