"""The one training loop every model shares, with per-epoch resumable checkpoints.

Batches carry images and labels ``(x, y)``: a conditional model uses y, the others ignore it, and the
loop never asks which. Each batch is shown to the model in its data space (grey, dequantised or
binarised; :func:`vaelab.data.view`). Loss terms are accumulated on the model's device and read once
per epoch: no host synchronisation per step, so a CUDA run is not throttled by the CPU.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vaelab.checkpoints import save_bytes
from vaelab.config import TrainConfig
from vaelab.data import batches, view
from vaelab.models.base import LatentModel

log = logging.getLogger(__name__)
TERMS = ("loss", "recon", "kl")


from vaelab.errors import NonFiniteLossError  # noqa: E402  (re-exported)


@dataclass(frozen=True)
class Epoch:
    """Mean loss terms of one epoch: ``train`` over its batches, ``test`` over the whole test set, and the
    model's own diagnostics at the end of the epoch (e.g. a learned decoder σ)."""

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


def _mean_terms(sums: torch.Tensor, n: int) -> dict[str, float]:
    return dict(zip(TERMS, (sums / n).tolist()))  # the one host read of the epoch


@torch.no_grad()
def evaluate_loss(model: LatentModel, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Loss terms averaged over all images of ``x``, and ``mse``: the summed squared error of the decoded
    posterior mean, the one reconstruction error every model shares (model left in train mode afterwards)."""
    model.eval()
    sums = torch.zeros(len(TERMS) + 1, device=x.device)
    for idx in batches(len(x), batch_size):
        xb, yb = x[idx], y[idx]
        out = model.loss(xb, yb)
        mse = (model.mean_image(model.encode(xb, yb).mean, yb) - xb).pow(2).sum(-1).mean()
        sums += torch.stack([*(out[k] for k in TERMS), mse]) * len(idx)
    model.train()
    return dict(zip((*TERMS, "mse"), (sums / len(x)).tolist()))


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
    model: LatentModel,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
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
    """Train ``model`` for ``cfg.epochs`` epochs of Adam on ``train = (images, labels)``; return the history.

    ``resume`` (from :func:`load_state`) continues a previous run; ``extra`` is stored in every
    checkpoint (e.g. the tracking run id) so a resumed run can find it again.
    """
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    model.to(device).train()
    space = model.cfg.data
    train_x, train_y = (t.to(device) for t in train)
    # The test set is seen in the model's data space once, with a fixed draw: epochs stay comparable.
    test_gen = torch.Generator(device).manual_seed(seed)
    test_x, test_y = view(space, test[0].to(device), test_gen), test[1].to(device)
    # fused: one kernel updates all parameters (measured 1.4x faster training steps on the 2-core CPU than
    # the per-tensor default; benchmarks/speed.py). Deterministic on CPU like the default.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    history: list[Epoch] = []
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"])
        shuffle.set_state(resume["shuffle_rng"])
        history = [Epoch(**e) for e in resume["history"]]
        log.info("%s: resuming after epoch %d of %d", name, len(history), cfg.epochs)

    for epoch in range(len(history) + 1, cfg.epochs + 1):
        sums, seen = torch.zeros(len(TERMS), device=device), 0
        for idx in batches(len(train_x), cfg.batch_size, shuffle):
            idx = idx.to(device)
            out = model.loss(view(space, train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            seen += len(idx)
            sums += torch.stack([out[k].detach() for k in TERMS]) * len(idx)
        train_terms = _mean_terms(sums, seen)
        result = Epoch(epoch, train_terms, evaluate_loss(model, test_x, test_y, cfg.batch_size), model.diagnostics())
        if not all(math.isfinite(v) for v in result.flat().values()):
            raise NonFiniteLossError(f"{name}: non-finite losses {result.flat()} at epoch {epoch}; "
                                     f"lower train.lr (now {cfg.lr}) or check the data")
        history.append(result)
        log.info("%s epoch %d/%d: train loss %.3f, test loss %.3f", name, epoch, cfg.epochs,
                 result.train["loss"], result.test["loss"])
        if state_path is not None:
            save_bytes({
                "fingerprint": state_fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "shuffle_rng": shuffle.get_state(),
                "history": [asdict(e) for e in history], "extra": extra or {},
            }, state_path)
        if on_epoch is not None:
            on_epoch(result)
    model.eval()
    return history
