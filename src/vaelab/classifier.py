"""A small MLP digit classifier, trained once on MNIST, that judges decoded images.

The `evaluate` stage asks it how confidently each tile of a decoded latent grid shows a digit: its
top softmax probability stands in for "this region of latent space decodes to a digit". It is an
MLP (not a CNN) because it trains in seconds on two CPU cores and is accurate enough for that role.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from vaelab.checkpoints import load_module, save_module
from vaelab.config import JudgeConfig as ClassifierConfig, from_dict
from vaelab.data import INPUT_DIM, NUM_CLASSES, batches
from vaelab.models.layers import mlp

log = logging.getLogger(__name__)
FORMAT = "vaelab.classifier/1"


def build(cfg: ClassifierConfig, seed: int | None = None) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return mlp([INPUT_DIM, *cfg.hidden, NUM_CLASSES])


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ClassifierConfig, seed: int) -> nn.Module:
    """Adam on the cross-entropy, ``cfg.epochs`` shuffled passes; returns ``net`` in eval mode."""
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.train()
    for epoch in range(1, cfg.epochs + 1):
        total = 0.0
        for idx in batches(len(x), cfg.batch_size, shuffle):
            idx = idx.to(device)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log.info("classifier epoch %d/%d: train cross-entropy %.4f", epoch, cfg.epochs, total / len(x))
    return net.eval()


@torch.no_grad()
def predict_proba(net: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """[N, 10] softmax class probabilities (on the CPU)."""
    device = next(net.parameters()).device
    return torch.cat([net(x[i].to(device)).softmax(-1).cpu() for i in batches(len(x), batch_size)])


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict_proba(net, x).argmax(1) == y).to(torch.float32).mean().item()


def save(net: nn.Module, cfg: ClassifierConfig, path: str | Path) -> None:
    save_module(net, FORMAT, {"hidden": list(cfg.hidden)}, Path(path))


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load the classifier in eval mode (``weights_only=True``: no code runs from the file)."""
    return load_module(path, FORMAT, lambda c: build(from_dict(ClassifierConfig, c, "config")),
                       "run `dvc repro judge` to train it", device)
