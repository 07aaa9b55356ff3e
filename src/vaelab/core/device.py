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


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """Median GFLOP/s of an n×n×n float32 matrix product on the CPU with the current number of threads: the
    yardstick of every "fraction of peak" (absolute speed moves ±30% between runs; a fraction of a peak measured
    in the same run does not)."""
    import time

    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return sorted(rates)[len(rates) // 2]
