"""Time the `evaluate` stage's work per model (not a test: timings depend on the machine and its load).

Usage, from a project whose pipeline has run (models/, data/ present)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/evaluate_speed.py [--samples K]

Prints, per model, the seconds `vaelab.evaluation.score` takes, and a reference float32 matrix
product's GFLOP/s measured before and after, so numbers from a loaded machine can be put in context.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import click
import torch

from vaelab import classifier, models
from vaelab.config import load_params
from vaelab.data import load_split
from vaelab.evaluation import score


def reference_gflops() -> float:
    a, b = torch.randn(16_384, 512), torch.randn(512, 784)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * a.shape[0] * 512 * 784 / (time.perf_counter() - start) / 1e9


@click.command()
@click.option("--samples", type=int, default=None, help="Override evaluate.iwae_samples.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("."), show_default=True)
def main(samples: int | None, root: Path) -> None:
    params = load_params(root / "params.yaml")
    cfg = params.evaluate if samples is None else dataclasses.replace(params.evaluate, iwae_samples=samples)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, "
          f"reference matmul {reference_gflops():.0f} GFLOP/s, K = {cfg.iwae_samples}")
    judge = classifier.load(root / "models" / "classifier")
    train = load_split(root / "data", "train", params.data.train_size)
    test = load_split(root / "data", "test")
    total = 0.0
    for name in params.models:
        model = models.load(root / "models" / name)
        start = time.perf_counter()
        score(model, judge, train, test, cfg, params.seed)
        took = time.perf_counter() - start
        total += took
        print(f"{name}: {took:.1f} s")
    print(f"total {total:.1f} s; load average {os.getloadavg()[0]:.1f}, "
          f"reference matmul {reference_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
