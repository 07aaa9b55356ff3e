"""How close the importance-sampling kernel's decoder passes get to this machine's matmul peak (not a test:
numbers depend on the machine and its load).

One run measures, in the same process and with 2 threads (the evaluation's setting):

1. the fp32 matrix-product peak, 2048³ (median of 7);
2. :func:`vaelab.measures.importance.estimate` at K = 1000 on the study's VAE decoder (2 → 128 → 256 → 512 → 784, ReLU,
   Bernoulli likelihood, random weights: the arithmetic does not depend on them), in decoder GFLOP/s (2 per
   multiply-accumulate of the decoder's linear layers; the likelihood and the sampling count as overhead)
   and as a fraction of the peak;
3. the levers tried: rows per decoder call, and log p(x|z) by ``log_prob_pairs`` (one matrix-vector product
   per image) instead of ``log_prob``.

    PYTHONPATH=src python benchmarks/importance.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from vaelab.core.distributions import DiagonalGaussian
from vaelab.measures import importance
from vaelab.models.layers import StackedLinear, mlp
from vaelab.models.likelihoods import Bernoulli

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the peak measured as benchmarks/speed.py measures it
from speed import matmul_peak  # noqa: E402

THREADS = 2
K = 1000
IMAGES = 48


def decoder_gflops(rows: int, pairs: bool = False, repeats: int = 3) -> float:
    """Best-of-``repeats`` decoder GFLOP/s of the kernel at K samples on IMAGES binary images."""
    torch.manual_seed(0)
    decoder = mlp([2, 128, 256, 512, 784]).eval()
    lik = Bernoulli()
    x = (torch.rand(IMAGES, 784) > 0.7).float()
    q = DiagonalGaussian(torch.randn(IMAGES, 2), torch.randn(IMAGES, 2) - 2)
    eps = importance.draw(q, K, torch.Generator().manual_seed(0))

    def log_lik(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        n, k, d = z.shape
        out = decoder(z.reshape(n * k, d))
        if pairs and n == 1:                  # one image: all its samples' log p(x|z) by one matrix-vector product
            return lik.log_prob_pairs(out, x[idx])
        return lik.log_prob(out.view(n, k, -1), x[idx, None])

    macs = sum(m.weight.shape[1] * m.weight.shape[2] for m in decoder.modules() if isinstance(m, StackedLinear))
    importance.estimate(log_lik, q, eps[:4], (K,), rows=rows)             # warm-up
    best = min(_timed(lambda: importance.estimate(log_lik, q, eps, (K,), rows=rows)) for _ in range(repeats))
    return 2 * IMAGES * K * macs / best / 1e9


def _timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def run() -> dict:
    """The peak, the kernel at its default rows, and each lever, as GFLOP/s and fractions of the peak."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        peak = matmul_peak()
        levers = {f"rows={r}": decoder_gflops(r) for r in (16_384, 8192, 4096, 2048, 1000)}
        levers["rows=1000, log_prob_pairs"] = decoder_gflops(1000, pairs=True)
        kernel = decoder_gflops(importance.ROWS)
        peak_after = matmul_peak()
    finally:
        torch.set_num_threads(threads)
    return {"threads": THREADS, "k": K, "images": IMAGES, "load_average": os.getloadavg()[0],
            "matmul_peak_gflops": peak, "matmul_peak_after_gflops": peak_after,
            "kernel_rows": importance.ROWS, "kernel_gflops": kernel, "kernel_fraction": kernel / peak,
            "levers": {name: {"gflops": g, "fraction": g / peak} for name, g in levers.items()}}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
