"""The one training loop: every network the study trains goes through :func:`fit_stacked` (the registered
models, the judge and the quadrant networks), so resume, bit-identical re-runs, the NaN check and the
once-per-epoch host reads hold for all of them.

**Seeds side by side.** A model's S seeds train as one stacked model (:mod:`vaelab.models.layers`): batches
are ``[S, B, ...]``, seed s's batch drawn by its own shuffle, its noise from its own stream
(:mod:`vaelab.core.streams`), and its Adam state is its own slice of the stacked parameters' state. The loss
minimised is the sum of the seeds' batch-mean losses, whose gradient with respect to seed s's weights is
exactly the gradient of seed s's own loss. With one seed batches have no seed axis (``[B, ...]``).

**The network's protocol.** ``net.loss(*batch, noise=...)`` returns a dict of loss terms, ``"loss"`` first,
each one value per seed (a 0-d tensor for one seed); ``net.test_terms`` (if it has one) is what the test set
is scored by each epoch (else ``net.loss``); ``net.diagnostics()`` (if any) gives per-seed numbers worth
following. The first element of a batch is the images, shown to the model through ``view`` (its data space's
training view: :mod:`vaelab.data.spaces`); the test images get one fixed draw of that view per seed.

**No host synchronisation per step.** Indices, images and noise live on the model's device; loss terms are
summed there and read once per epoch, so a CUDA run is not throttled by the CPU.

**Resumable.** At the end of each epoch the loop writes (atomically) the network, optimizer and RNG states,
the history so far and a fingerprint of the params and data. Started again with the same fingerprint it
resumes from the last complete epoch and ends bit-identical (on the same machine) to an uninterrupted run;
a checkpoint with another fingerprint is set aside, never resumed from. Tracking is not done here: the
caller gets each finished epoch through ``on_epoch``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import nn

from vaelab.core.checkpoints import save_bytes
from vaelab.core.errors import NonFiniteLossError
from vaelab.core.streams import Source, Streams
from vaelab.training.optim import make_optimizer

log = logging.getLogger(__name__)
TERMS = ("loss", "recon", "kl")  # the registered models' loss terms (a history's columns)
View = Callable[[torch.Tensor, Source], torch.Tensor]


class Schedule(Protocol):
    """How a network is trained; a schedule may also name its ``optimizer`` (:data:`vaelab.training.optim.OPTIMIZERS`,
    default Adam: the judge's and the quadrant networks' schedules do not name one)."""

    epochs: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class Epoch:
    """Mean loss terms of one epoch of one seed: ``train`` over its batches, ``test`` over the whole test set,
    and the network's own diagnostics at the end of the epoch (e.g. a learned decoder σ)."""

    epoch: int
    train: dict[str, float]
    test: dict[str, float]
    diagnostics: dict[str, float] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        out = {f"{split}_{k}": v for split in ("train", "test") for k, v in getattr(self, split).items()}
        return {**out, **self.diagnostics}


def fingerprint(*parts: Any, data: torch.Tensor | None = None) -> str:
    """A hash of the settings (JSON-serialisable) and, optionally, the training data."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    if data is not None:
        digest.update(data.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_state(path: Path, fingerprint: str) -> dict | None:
    """The resumable state at ``path`` if it belongs to ``fingerprint``; otherwise None.

    A state from other params or data (or an unreadable one) is moved aside to ``*.stale``.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(state, dict) and state.get("fingerprint") == fingerprint
    except Exception:  # noqa: BLE001 - any unreadable file is set aside, never trusted
        ok = False
    if not ok:
        stale = path.with_suffix(".stale")
        os.replace(path, stale)
        log.warning("%s belongs to other params or data; moved to %s, training from scratch", path, stale)
        return None
    return state


def saved_extra(path: Path) -> dict:
    """The ``extra`` of the resumable state at ``path`` ({} if there is none or it is unreadable), read without
    judging whether the state belongs to these settings (:func:`load_state` judges that)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to resume from
        return {}
    return state.get("extra", {}) if isinstance(state, dict) else {}


def _rows(t: torch.Tensor, index: torch.Tensor | slice, stacked: bool) -> torch.Tensor:
    """Rows of ``t`` along its image axis (axis 1 when it carries a seed axis)."""
    return t[:, index] if stacked else t[index]


def _per_seed(terms: dict[str, torch.Tensor], s: int) -> torch.Tensor:
    """[T, S]: the terms of one step, one column per seed."""
    return torch.stack([v.detach().reshape(-1).expand(s) for v in terms.values()])


@torch.no_grad()
def _score(net: nn.Module, batch: tuple[torch.Tensor, ...], batch_size: int, noise: Source,
           stacked: bool) -> tuple[list[str], torch.Tensor]:
    """Term names and [T, S] means of ``net.test_terms`` (or ``net.loss``) over every image of ``batch``
    (the network left in train mode afterwards)."""
    terms_of = getattr(net, "test_terms", net.loss)
    net.eval()
    n = batch[0].shape[1 if stacked else 0]
    s = batch[0].shape[0] if stacked else 1
    keys, sums = None, None
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        out = terms_of(*(_rows(t, rows, stacked) for t in batch), noise=noise)
        keys = keys or list(out)
        step = _per_seed(out, s) * min(batch_size, n - start)
        sums = step if sums is None else sums + step
    net.train()
    return keys, sums / n


def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  noise: Source = None) -> dict[str, float]:
    """One (unstacked) model's test terms averaged over all images of ``x`` (``loss``, ``recon``, ``kl`` and
    ``mse`` for a registered model)."""
    keys, means = _score(model, (x, y), batch_size, noise, stacked=False)
    return dict(zip(keys, means[:, 0].tolist()))


def fit(net: nn.Module, train: Sequence[torch.Tensor], test: Sequence[torch.Tensor] | None, cfg: Schedule, *,
        seed: int, **kwargs: Any) -> list[Epoch]:
    """:func:`fit_stacked` for one seed; returns its history."""
    return fit_stacked(net, train, test, cfg, seeds=[seed], **kwargs)[0]


def fit_stacked(
    net: nn.Module,
    train: Sequence[torch.Tensor],
    test: Sequence[torch.Tensor] | None,
    cfg: Schedule,
    *,
    seeds: Sequence[int],
    view: View | None = None,
    params: list[nn.Parameter] | None = None,
    lr_at: Callable[[int], float] | None = None,
    name: str = "model",
    lr_param: str = "the learning rate",
    device: torch.device = torch.device("cpu"),
    state_path: Path | None = None,
    state_fingerprint: str = "",
    resume: dict | None = None,
    extra: dict | None = None,
    on_epoch: Callable[[list[Epoch]], None] | None = None,
) -> list[list[Epoch]]:
    """Train ``net`` (S = len(seeds) seeds side by side) for ``cfg.epochs`` epochs of Adam (or ``cfg.optimizer``) on ``train``, a
    tuple of tensors with one row per example (images first); return each seed's history.

    ``test`` (same layout) is scored at the end of each epoch; ``view`` shows images in the model's data space
    (a registered model's ``space.train_view``); ``params`` restricts what is trained (default: everything
    that requires a gradient); ``lr_at(epoch)`` sets the learning rate per epoch (default ``cfg.lr``);
    ``lr_param`` names the learning rate's param in the error a non-finite loss raises.
    ``resume`` (from :func:`load_state`) continues a previous run; ``extra`` is stored in every checkpoint
    (e.g. the tracking run ids) so a resumed run can find it again.
    """
    seeds = [int(s) for s in seeds]
    s, stacked = len(seeds), len(seeds) > 1
    if getattr(net, "stack", 1) != s:
        raise ValueError(f"{name}: the network holds {getattr(net, 'stack', 1)} seeds, but {s} were given")
    net.to(device).train()
    data = [t.to(device) for t in train]
    n = len(data[0])
    shuffles = [torch.Generator().manual_seed(seed) for seed in seeds]
    noise = Streams(seeds, device)
    view = view or (lambda x, source: x)
    scored = None
    if test is not None:
        # The test images are seen in the model's data space once per seed, with a fixed draw: epochs compare.
        x, *rest = (t.to(device) for t in test)
        expand = (lambda t: t.expand(s, *t.shape)) if stacked else (lambda t: t)
        scored = (view(expand(x), Streams(seeds, device)), *(expand(t) for t in rest))
    trained = params if params is not None else [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(getattr(cfg, "optimizer", "adam"), trained, cfg.lr)
    history: list[list[Epoch]] = [[] for _ in seeds]
    if resume is not None:
        net.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        for g, state in zip(shuffles, resume["shuffle_rng"], strict=True):
            g.set_state(state)
        noise.set_state(resume["noise_rng"])
        history = [[Epoch(**e) for e in h] for h in resume["history"]]
        log.info("%s: resuming after epoch %d of %d", name, len(history[0]), cfg.epochs)

    for epoch in range(len(history[0]) + 1, cfg.epochs + 1):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch)
        # One shuffle per seed, moved to the device once per epoch (no host-to-device copy per step).
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)
        order = order if stacked else order[0]
        keys, sums = None, None
        for start in range(0, n, cfg.batch_size):
            idx = _rows(order, slice(start, start + cfg.batch_size), stacked)
            images, *rest = (t[idx] for t in data)
            out = net.loss(view(images, noise), *rest, noise=noise)
            opt.zero_grad(set_to_none=True)
            out["loss"].sum().backward()
            opt.step()
            keys = keys or list(out)
            step = _per_seed(out, s) * idx.shape[-1]
            sums = step if sums is None else sums + step
        train_terms = (sums / n).tolist()  # the one host read of the epoch's training terms
        test_keys, test_terms = _score(net, scored, cfg.batch_size, noise, stacked) if scored else ([], None)
        test_terms = test_terms.tolist() if test_terms is not None else [[] for _ in keys]
        diagnostics = {k: v.reshape(-1).expand(s).tolist()
                       for k, v in (net.diagnostics() if hasattr(net, "diagnostics") else {}).items()}
        results = [Epoch(epoch, {k: train_terms[j][i] for j, k in enumerate(keys)},
                         {k: test_terms[j][i] for j, k in enumerate(test_keys)},
                         {k: v[i] for k, v in diagnostics.items()}) for i in range(s)]
        for seed, result in zip(seeds, results):
            if not all(math.isfinite(v) for v in result.flat().values()):
                who = f"{name} (seed {seed})" if stacked else name
                raise NonFiniteLossError(f"{who}: non-finite losses {result.flat()} at epoch {epoch}; "
                                         f"lower {lr_param} (now {cfg.lr}) or check the data")
        for h, result in zip(history, results):
            h.append(result)
        log.info("%s epoch %d/%d: train loss %s, test loss %s", name, epoch, cfg.epochs,
                 " ".join(f"{r.train['loss']:.3f}" for r in results),
                 " ".join(f"{r.test['loss']:.3f}" for r in results if "loss" in r.test) or "-")
        if state_path is not None:
            save_bytes({
                "fingerprint": state_fingerprint, "model": net.state_dict(), "optimizer": opt.state_dict(),
                "shuffle_rng": [g.get_state() for g in shuffles], "noise_rng": noise.get_state(),
                "history": [[asdict(e) for e in h] for h in history], "extra": extra or {},
            }, state_path)
        if on_epoch is not None:
            on_epoch(results)
    net.eval()
    return history
