"""The CUDA path, checked where a GPU is present (skipped elsewhere; benchmarks/gpu_check.sh runs these):
a stacked training epoch makes no host synchronisation per step, and CUDA training matches the CPU's to a
tolerance (other kernels, so never exactly)."""

from __future__ import annotations

import warnings

import pytest
import torch

from vaelab import models
from vaelab.core.config import TrainConfig
from vaelab.data.mnist import load_split
from vaelab.training.loop import fit_stacked

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu_check.sh)")]
SPEC = {"kind": "vae", "hidden": [64, 32, 16], "likelihood": {"name": "gaussian_optimal"}, "data": "dequantized"}
SEEDS = [1, 2, 3]


def train(device: str, images: int, mnist_root) -> tuple[models.LatentModel, int]:
    """Train SEEDS stacked for one epoch on ``device``; return the model and the number of host syncs seen."""
    spec = models.spec_from_dict(SPEC, "m")
    model = models.stack([models.build(spec, seed=s) for s in SEEDS]).to(device)
    split = load_split(mnist_root, "train", images)
    test = load_split(mnist_root, "test", 256)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fit_stacked(model, split, test, TrainConfig(1, 64, 1e-3), seeds=SEEDS, view=model.space.train_view,
                        device=torch.device(device))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return model, sum("synchroniz" in str(w.message) for w in seen)


def test_no_host_sync_per_step(mnist_root) -> None:
    _, few = train("cuda", 4 * 64, mnist_root)
    _, many = train("cuda", 16 * 64, mnist_root)
    assert many == few, f"{few} syncs for 4 steps, {many} for 16: the loop synchronises per step"


def test_cuda_training_matches_the_cpu(mnist_root) -> None:
    gpu, _ = train("cuda", 4 * 64, mnist_root)
    spec = models.spec_from_dict(SPEC, "m")
    cpu = models.stack([models.build(spec, seed=s) for s in SEEDS])
    fit_stacked(cpu, load_split(mnist_root, "train", 4 * 64), None, TrainConfig(1, 64, 1e-3), seeds=SEEDS,
                view=cpu.space.train_view)
    # The noise differs (CUDA generators draw other numbers than the CPU's), so compare the scale of the
    # weights' change, not the weights: both runs must move them alike.
    start = models.stack([models.build(spec, seed=s) for s in SEEDS]).state_dict()
    for key, value in cpu.state_dict().items():
        moved_cpu = (value - start[key]).norm()
        moved_gpu = (gpu.state_dict()[key].cpu() - start[key]).norm()
        assert moved_gpu == pytest.approx(moved_cpu, rel=0.5, abs=1e-3), key
