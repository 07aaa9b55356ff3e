"""Where tensors live: ``device: auto`` in params.yaml means CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from vaelab.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without CUDA is a ConfigError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda': expected a machine with CUDA; use 'auto' or 'cpu' here")
    return torch.device(name)
