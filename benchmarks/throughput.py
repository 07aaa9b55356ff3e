"""Training throughput (images/s) of vaelab's in-memory batches against a naive torchvision pipeline.

Both sides train the same model with the same batch size and optimizer for the same number of
images; only the input pipeline differs:

- vaelab: MNIST held as one float tensor, batches taken by index (what `vaelab.train.fit` does);
- baseline: ``torchvision.datasets.MNIST`` + ``ToTensor`` + ``DataLoader(shuffle=True)``.

Run from the project root after `dvc repro download` (or `make bench`)::

    python benchmarks/throughput.py --images 30000
"""

from __future__ import annotations

import time

import click
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from vaelab import models
from vaelab.config import load_params
from vaelab.data import batches, load_split


def train_images_per_s(model: torch.nn.Module, batch_iter, n_images: int, lr: float) -> float:
    """Train on batches from ``batch_iter`` until ``n_images`` were seen; return images per second."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    seen, start = 0, time.perf_counter()
    for x in batch_iter:
        loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
        if seen >= n_images:
            break
    return seen / (time.perf_counter() - start)


def in_memory(x: torch.Tensor, batch_size: int, seed: int):
    while True:
        for idx in batches(len(x), batch_size, torch.Generator().manual_seed(seed)):
            yield x[idx]


def naive(root: str, batch_size: int):
    dataset = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
    while True:
        for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=True):
            yield x.view(len(x), -1)


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--root", default="data", show_default=True)
@click.option("--images", default=30_000, show_default=True, help="Images trained on per measurement.")
def main(params_path: str, root: str, images: int) -> None:
    params = load_params(params_path)
    bs, lr = params.train.batch_size, params.train.lr
    x = load_split(root, "train").images
    click.echo(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {bs}, {images} images each")
    click.echo(f"{'model':10} {'vaelab img/s':>13} {'baseline img/s':>15} {'ratio':>6}")
    for name, cfg in params.models.items():
        ours = train_images_per_s(models.build(cfg, seed=0), in_memory(x, bs, params.seed), images, lr)
        base = train_images_per_s(models.build(cfg, seed=0), naive(root, bs), images, lr)
        click.echo(f"{name:10} {ours:13.0f} {base:15.0f} {ours / base:6.1f}x")


if __name__ == "__main__":
    main()
