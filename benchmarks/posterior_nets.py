"""C2ST of the two amortised posterior estimators of :mod:`vaelab.sbi.posterior_nets` (not a test: the numbers
depend on the budget, and the times on the machine and its load).

For ``gaussian_linear`` and ``two_moons`` with 10^3 and 10^4 simulations, each variant is trained through the
one loop with one torch thread, 2,000 posterior draws are taken for sbibm's observation 1 and compared with
2,000 exact reference draws (the task's exact sampler) by sbi's C2ST (``classifier="mlp"``; 0.5 is perfect).
Prints one JSON line per run (task, simulations, variant, C2ST, training seconds, the posterior mean's largest
error where the exact mean is known).

    PYTHONPATH=src [TASKS=two_moons] [SIZES=10000] python benchmarks/posterior_nets.py [variant ...]   # sbibm files: $SBIBM_ROOT

Measured 2026-12-03 (2 cores shared with other jobs, load 5-8: the training seconds are inflated and noisy, the
same two_moons 10^3 CVAE run took 9.8, 4.4 and 6.2 s; a full rerun reproduced every C2ST to the digit, with
training times of 6-18 s at 10^3 and 20-40 s at 10^4, over the ~20 s aimed at). hidden 64-64,
latent 4, 8 components, Adam 1e-3; 10^3: 50 epochs of batch 100; 10^4: 30 epochs of batch 200. C2ST (s):

    task             sims   cvae         cvae_iw5     cvae_box     cvae_box_iw5  bbvi         bbvi K=20 lr 3e-3
    gaussian_linear  10^3   0.637 (12)   0.647 (4)    -            -             0.570 (6)    -
    gaussian_linear  10^4   0.589 (28)   0.580 (28)   -            -             0.564 (43)   -
    two_moons        10^3   0.732 (10)   0.718 (8)    0.937 (12)   0.799 (18)    0.982 (11)   0.942 (20)
    two_moons        10^4   0.740 (30)   0.651 (10)   0.638 (36)   0.566 (23)    0.955 (28)   0.919 (39)

(150 epochs at 10^3 overfit: gaussian_linear CVAE 0.767.) BBVI on two_moons is limited mostly by its family, and
less by amortisation: fitted to x_o alone (not amortised, 400 steps, lr 3e-3; a one-off check, not in this
script) it reaches 0.888 with 8 components (all mass on one of the two crescents) and 0.782 with 20 (25% on the
second): reverse KL with a mixture of diagonal Gaussians in the box's logit space covers the two thin crescents
badly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from typing import Callable

import torch

from vaelab.core.config import TrainConfig
from vaelab.core.errors import DataError
from vaelab.sbi import sbibm_files
from vaelab.sbi.c2st import c2st  # sbibm's C2ST (sbi's own, with sbibm's MLP settings): the one C2ST of vaelab
from vaelab.sbi.posterior_nets import (DEFAULT_COMPONENTS, DEFAULT_HIDDEN, DEFAULT_LATENT, AmortizedPosterior,
                                       BlackBoxVI, PosteriorCVAE, fit_bbvi, fit_cvae, simulations)
from vaelab.sbi.tasks import SBITask, get_task

ROOT = os.environ.get("SBIBM_ROOT", str(sbibm_files.DEFAULT_ROOT))
TASKS = tuple(os.environ.get("TASKS", "gaussian_linear,two_moons").split(","))
SIZES = tuple(int(n) for n in os.environ.get("SIZES", "1000,10000").split(","))
DRAWS = 2_000
SEED = 0
HIDDEN, LATENT, COMPONENTS = list(DEFAULT_HIDDEN), DEFAULT_LATENT, DEFAULT_COMPONENTS
LR = 1e-3
# Epochs so that one training takes <= ~20 s on one loaded core (fewer at 10^3: 150 epochs overfit the CVAE,
# C2ST 0.77 on gaussian_linear, a training loss of -2.7 nats against the exact posterior's entropy, -0.8); batch 100 at 10^3, 200 at 10^4.
SCHEDULE = {1_000: TrainConfig(epochs=50, batch_size=100, lr=LR), 10_000: TrainConfig(epochs=30, batch_size=200, lr=LR)}


def observation(task: SBITask) -> torch.Tensor:
    """sbibm's observation 1, fetched (and verified) on first use."""
    try:
        return sbibm_files.observation(task.name, 1, ROOT)
    except DataError:
        sbibm_files.fetch_sbibm_files(ROOT)
        return sbibm_files.observation(task.name, 1, ROOT)


def cvae(box: bool = False, iw: int = 1) -> Callable:
    def run(task: SBITask, theta: torch.Tensor, x: torch.Tensor, cfg: TrainConfig):
        net = PosteriorCVAE.from_data(theta, x, HIDDEN, LATENT, task.prior_bounds, box=box, iw_samples=iw)
        return net, fit_cvae(net, theta, x, cfg, SEED)
    return run


def bbvi(samples: int = 1, components: int = COMPONENTS, lr: float = LR) -> Callable:
    def run(task: SBITask, theta: torch.Tensor, x: torch.Tensor, cfg: TrainConfig):
        q = AmortizedPosterior.from_data(theta, x, HIDDEN, components, task.prior_bounds)
        return q, fit_bbvi(BlackBoxVI(task, q, samples), x, replace(cfg, lr=lr), SEED)
    return run


VARIANTS = {"cvae": cvae(), "cvae_box": cvae(box=True), "cvae_iw5": cvae(iw=5), "cvae_box_iw5": cvae(box=True, iw=5),
            "bbvi": bbvi(), "bbvi_k20_lr3e-3": bbvi(components=20, lr=3e-3)}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    for task_name in TASKS:
        task = get_task(task_name)
        x_o = observation(task)
        reference = task.reference_posterior(x_o, DRAWS, torch.Generator().manual_seed(1))
        for n in SIZES:
            theta, x = simulations(task, n, SEED)
            for name in names:
                if "box" in name and task.prior_bounds is None:
                    continue
                torch.manual_seed(SEED)  # the initial weights
                start = time.perf_counter()
                net, history = VARIANTS[name](task, theta, x, SCHEDULE[n])
                seconds = time.perf_counter() - start
                draws = net.sample(x_o, DRAWS, torch.Generator().manual_seed(2))
                row = {"task": task_name, "simulations": n, "variant": name,
                       "c2st": round(c2st(draws, reference), 3),
                       "train_s": round(seconds, 1), "epochs": SCHEDULE[n].epochs,
                       "first_loss": round(history[0].train["loss"], 3), "last_loss": round(history[-1].train["loss"], 3)}
                if hasattr(task, "posterior_moments"):
                    mean, _ = task.posterior_moments(x_o)
                    row["mean_max_abs_err"] = round(float((draws.mean(0) - mean).abs().max()), 4)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(VARIANTS))
