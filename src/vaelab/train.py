"""The one training loop every model shares, with per-epoch resumable checkpoints.

At the end of each epoch the loop writes (atomically) the model, optimizer and RNG states, the
history so far and a fingerprint of the params and data. Started again with the same fingerprint it
resumes from the last complete epoch and ends bit-identical (on CPU) to an uninterrupted run; a
checkpoint with another fingerprint is set aside, never resumed from. Tracking is not done here:
the caller gets each finished epoch through ``on_epoch``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from vaelab.config import ConfigError, TrainConfig
from vaelab.data import batches
from vaelab.files import atomic_path
from vaelab.models import Model

log = logging.getLogger(__name__)
TERMS = ("loss", "recon", "kl")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training diverged."""


@dataclass(frozen=True)
class Epoch:
    """Mean loss terms of one epoch: ``train`` over its batches, ``test`` over the whole test set."""

    epoch: int
    train: dict[str, float]
    test: dict[str, float]

    def flat(self) -> dict[str, float]:
        return {f"{split}_{k}": v for split in ("train", "test") for k, v in getattr(self, split).items()}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda': expected a machine with CUDA; use 'auto' or 'cpu' here")
    return torch.device(name)


def fingerprint(*parts: Any, data: torch.Tensor | None = None) -> str:
    """A hash of the settings (JSON-serialisable) and, optionally, the training data."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    if data is not None:
        digest.update(data.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def evaluate_loss(model: Model, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Loss terms averaged over all images of ``x`` (model left in train mode afterwards)."""
    model.eval()
    sums = dict.fromkeys(TERMS, 0.0)
    for idx in batches(len(x), batch_size):
        out = model.loss(x[idx])
        for k in TERMS:
            sums[k] += out[k].item() * len(idx)
    model.train()
    return {k: v / len(x) for k, v in sums.items()}


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


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


def fit(
    model: Model,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    cfg: TrainConfig,
    *,
    seed: int,
    name: str = "model",
    device: torch.device = torch.device("cpu"),
    state_path: Path | None = None,
    state_fingerprint: str = "",
    resume: dict | None = None,
    extra: dict | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
) -> list[Epoch]:
    """Train ``model`` for ``cfg.epochs`` epochs of Adam; return the per-epoch history.

    ``resume`` (from :func:`load_state`) continues a previous run; ``extra`` is stored in every
    checkpoint (e.g. the tracking run id) so a resumed run can find it again.
    """
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    model.to(device).train()
    train_x, test_x = train_x.to(device), test_x.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[Epoch] = []
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"])
        shuffle.set_state(resume["shuffle_rng"])
        history = [Epoch(**e) for e in resume["history"]]
        log.info("%s: resuming after epoch %d of %d", name, len(history), cfg.epochs)

    for epoch in range(len(history) + 1, cfg.epochs + 1):
        sums, seen = dict.fromkeys(TERMS, 0.0), 0
        bar = tqdm(list(batches(len(train_x), cfg.batch_size, shuffle)), desc=f"{name} {epoch}/{cfg.epochs}",
                   leave=False, disable=None)
        for step, idx in enumerate(bar, start=1):
            out = model.loss(train_x[idx.to(device)])
            value = out["loss"].item()
            if not math.isfinite(value):
                raise NonFiniteLossError(f"{name}: loss is {value} at epoch {epoch}, batch {step}; "
                                         f"lower train.lr (now {cfg.lr}) or check the data")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            seen += len(idx)
            for k in TERMS:
                sums[k] += out[k].item() * len(idx)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.2f}", refresh=False)
        result = Epoch(epoch, {k: v / seen for k, v in sums.items()}, evaluate_loss(model, test_x, cfg.batch_size))
        if not all(math.isfinite(v) for v in result.flat().values()):
            # The last step can leave NaN weights that no training batch saw: never record them.
            raise NonFiniteLossError(f"{name}: non-finite losses {result.flat()} at epoch {epoch}, "
                                     f"batch {step} (after the last step); lower train.lr (now {cfg.lr})")
        history.append(result)
        log.info("%s epoch %d/%d: train loss %.3f, test loss %.3f", name, epoch, cfg.epochs,
                 result.train["loss"], result.test["loss"])
        if state_path is not None:
            _save_state(state_path, {
                "fingerprint": state_fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "shuffle_rng": shuffle.get_state(),
                "history": [asdict(e) for e in history], "extra": extra or {},
            })
        if on_epoch is not None:
            on_epoch(result)
    model.eval()
    return history
