"""Where tensors live: ``device: auto`` in params.yaml means CUDA when present, else the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaelab.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without CUDA is a ConfigError."""
    import torch  # here: the stage runner imports this module, and a stage that never computes needs no torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda': expected a machine with CUDA; use 'auto' or 'cpu' here")
    return torch.device(name)


# Starting worker processes costs a few seconds; below this much arithmetic per call the calls run one after
# another (vaelab.pipeline.stage.parallel_map), and a model's seeds train in one stacked group.
PARALLEL_MIN_GFLOP = 200.0
