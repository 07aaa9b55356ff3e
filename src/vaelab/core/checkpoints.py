"""The checkpoint format shared by every saved network: ``{format, config, state_dict}``.

Written atomically and byte-identically: identical weights give identical files (``torch.save`` into
memory, so the archive's internal name never depends on a temporary file name), which is what lets DVC
see that a re-run changed nothing. Read with ``torch.load(weights_only=True)``: no code from the file runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vaelab.core.errors import CheckpointError, ConfigError
from vaelab.core.files import atomic_path


def to_bytes(obj: object) -> bytes:
    """``torch.save`` into memory: the zip archive's folder name is fixed ("archive"), so equal objects give equal bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_bytes(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(to_bytes(obj))


def payload(module: nn.Module, fmt: str, config: dict) -> dict:
    """What a checkpoint holds. The config is stored as canonical JSON text: pickling the dict itself would make
    the bytes depend on which of its strings happen to be the same Python object (pickle's memo)."""
    return {"format": fmt, "config": json.dumps(config, sort_keys=True),
            "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}


def save_module(module: nn.Module, fmt: str, config: dict, path: Path) -> None:
    """Save ``{format, config, state_dict}`` via a temporary file and a rename: never half-written."""
    save_bytes(payload(module, fmt, config), Path(path))


def load_module(path: str | Path, fmt: str, build_from: Callable[[dict], nn.Module], missing_hint: str,
                device: str | torch.device = "cpu") -> nn.Module:
    """Read a :func:`save_module` checkpoint (a folder means its model.pt) in eval mode on ``device``.

    ``weights_only=True``: no code from the file runs. Any problem raises CheckpointError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; {missing_hint}") from None
    except Exception as err:  # torch raises many types for corrupt or foreign pickles
        # Their first sentence only: the rest of torch's weights-only message advises weights_only=False.
        why = str(err).strip().split("\n")[0].split(". ")[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {why}); "
                              f"{missing_hint}") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:  # (`payload` here: what the file holds)
        raise CheckpointError(f"{path}: not a vaelab checkpoint of format {fmt!r}")
    try:
        config = payload["config"]
        module = build_from(json.loads(config) if isinstance(config, str) else config)
        module.load_state_dict(payload["state_dict"])
    except (ConfigError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: checkpoint does not match its config: {err}") from None
    return module.to(device).eval()
