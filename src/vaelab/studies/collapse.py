"""Why the post's autoencoder collapses, measured: its first optimiser steps, one seed, with the numbers read at
every step (the pre-sigmoid code, how many codes sit on the sigmoid's flat tails, how far apart the images'
codes are, and the gradient that reaches the encoder's first layer).

The one training loop (:mod:`vaelab.training.loop`) reads nothing per step, by design; this study needs the
gradient of every step, so it takes its few steps here, with the same model, data, optimiser and batch size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaelab import models
from vaelab.core.config import Params
from vaelab.core.errors import ConfigError
from vaelab.data.mnist import load_split
from vaelab.training.optim import make_optimizer

TAIL = 6.0  # |pre-sigmoid code| beyond this: the sigmoid's slope is below 0.0025 (sigmoid'(6) = 0.00247)


def first_steps(model: torch.nn.Module, images: torch.Tensor, steps: int, batch_size: int, lr: float,
                optimizer: str, seed: int) -> list[dict[str, float]]:
    """Per step, before the update: the batch's loss, mean |pre-sigmoid code|, the share of code coordinates past
    :data:`TAIL`, the codes' spread (the std over the batch of the sigmoid code, mean over coordinates) and the
    gradient norm of the encoder's first weight. The model must have ``pre_code`` (an AE with a sigmoid code)."""
    opt = make_optimizer(optimizer, model.parameters(), lr)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    first = next(p for p in model.parameters())  # the encoder's first weight (registered first)
    rows = []
    for step in range(steps):
        x = images[order[step * batch_size:(step + 1) * batch_size]]
        pre = model.pre_code(x)
        loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        rows.append({"step": step, "loss": loss.item(), "pre_abs_mean": pre.abs().mean().item(),
                     "tail_share": (pre.abs() > TAIL).to(torch.float32).mean().item(),
                     "code_spread": torch.sigmoid(pre).std(0).mean().item(),
                     "encoder_grad": first.grad.norm().item()})
        opt.step()
    return rows


def summary(rows: list[dict[str, float]]) -> dict[str, float | int | None]:
    """The numbers the report states: the first step at which half the code coordinates are past the tail, the
    peak encoder gradient and the last one, and the code's spread and |pre-sigmoid code| first and last."""
    half = next((r["step"] for r in rows if r["tail_share"] >= 0.5), None)
    return {"steps": len(rows), "half_in_tail_at": half,
            "pre_abs_first": rows[0]["pre_abs_mean"], "pre_abs_last": rows[-1]["pre_abs_mean"],
            "tail_share_last": rows[-1]["tail_share"],
            "spread_first": rows[0]["code_spread"], "spread_last": rows[-1]["code_spread"],
            "grad_peak": max(r["encoder_grad"] for r in rows), "grad_last": rows[-1]["encoder_grad"]}


def names(params: Params) -> list[str]:
    """The models of `collapse.models` that params.yaml `models` has (a quick run may drop some, as `inference`)."""
    return [n for n in params.collapse.models if n in params.models]


def check(params: Params) -> None:
    """A clear ConfigError before any work: a `collapse.models` entry that is missing or has no sigmoid code."""
    for name in names(params):
        if not hasattr(models.REGISTRY[models.spec_of(params, name).kind], "pre_code"):
            raise ConfigError(f"params.yaml: collapse.models names {name!r}, whose kind has no sigmoid code "
                              "(pre_code): expected an AE")


def compute(params: Params, root: Path) -> dict:
    """Every model of :func:`names`, first seed, over the first `collapse.steps` steps of the
    study's schedule (`train`): ``{model: {"summary": ..., "steps": [...]}}``."""
    seed = params.seeds[0]
    images = load_split(root / "data", "train", params.data.train_size).images
    out = {}
    for name in names(params):
        model = models.build(models.spec_of(params, name), seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rows = first_steps(model, images, params.collapse.steps, params.train.batch_size, params.train.lr,
                               params.train.optimizer, seed)
        out[name] = {"summary": summary(rows), "steps": rows}
    return out
