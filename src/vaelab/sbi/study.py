"""The SBI study of one sbibm task: the post's promised follow-up ("variational inference or SBI with conditional
VAEs"). Each estimator of :data:`ESTIMATORS` is trained on the same simulations at each budget, draws from its
posterior for each of sbibm's observations, and is scored by C2ST against sbibm's reference posterior samples.

The estimators answer one question each, :meth:`Estimator.fit`, and what they return answers one more,
:meth:`Fitted.sample`: the study never asks which estimator it holds. ``cvae`` (VItamin's layout) and ``bbvi``
(amortised black-box VI, a Gaussian mixture) train through vaelab's one loop; ``npe`` is sbi's NPE with sbibm's
settings, trained by sbi's own loop (the benchmark's anchor as sbi ships it).

What differs from sbibm's protocol (Lueckmann et al. 2021) is a setting of params.yaml ``sbi:``, and the report
states it: the observations (sbibm: all 10), the draws per C2ST (sbibm: 10,000 against 10,000) and the budgets
(sbibm: 10^3, 10^4, 10^5).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from vaelab.core.config import SBIConfig, TrainConfig
from vaelab.core.errors import ConfigError
from vaelab.core.stats import mean_ci
from vaelab.sbi import npe, sbibm_files
from vaelab.sbi.c2st import c2st
from vaelab.sbi.posterior_nets import (AmortizedPosterior, BlackBoxVI, FlowPosterior, PosteriorCVAE, fit_bbvi, fit_cvae,
                                       simulations)
from vaelab.sbi.published import SOURCE, npe_c2st
from vaelab.sbi.tasks import SBITask, get_task

log = logging.getLogger("vaelab")

C2ST_SEED = 1          # sbibm's default seed of its C2ST (subsampling, classifier, folds)
SAMPLE_SEED = 2        # the posterior draws, per observation: SAMPLE_SEED + k
# What a call of :func:`score` costs, for the stage's worker pool: a training and several C2STs, tens of seconds at
# the least, always worth a worker of its own (an order of magnitude, not a measurement).
GFLOP_PER_CALL = 1000.0


@dataclass
class Fitted:
    """A trained posterior estimator: its draws for an observation, and its per-epoch losses."""

    sample: Callable[[Tensor, int, int], Tensor]   # (x_o [1, dim_x], n, seed) -> [n, dim_theta]
    history: list[dict[str, float]]               # per epoch: the loss terms (sbi's NPE: its validation loss)


@dataclass(frozen=True)
class Estimator:
    """A posterior estimator of the study: how it trains on simulations (θ, x) at a budget's schedule."""

    fit: Callable[[SBITask, Tensor, Tensor, SBIConfig, TrainConfig, int], Fitted]
    what: str     # the report's one-line description


def _fitted(net: Any, history: list) -> Fitted:
    """A net of vaelab's loop (``net.sample(x_o, n, generator)``) and its epochs, as the study asks for them."""
    return Fitted(lambda x_o, n, s: net.sample(x_o, n, torch.Generator().manual_seed(s)),
                  [{f"train_{k}": v for k, v in e.train.items()} for e in history])


def _fit_cvae(task: SBITask, theta: Tensor, x: Tensor, cfg: SBIConfig, schedule: TrainConfig, seed: int) -> Fitted:
    torch.manual_seed(seed)   # the initial weights
    net = PosteriorCVAE.from_data(theta, x, cfg.hidden, cfg.latent_dim, task.prior_bounds, iw_samples=cfg.iw_samples)
    return _fitted(net, fit_cvae(net, theta, x, schedule, seed))


def _fit_bbvi(task: SBITask, theta: Tensor, x: Tensor, cfg: SBIConfig, schedule: TrainConfig, seed: int) -> Fitted:
    torch.manual_seed(seed)
    q = AmortizedPosterior.from_data(theta, x, cfg.hidden, cfg.components, task.prior_bounds)
    return _fitted(q, fit_bbvi(BlackBoxVI(task, q), x, schedule, seed))


def _fit_bbvi_flow(task: SBITask, theta: Tensor, x: Tensor, cfg: SBIConfig, schedule: TrainConfig,
                   seed: int) -> Fitted:
    torch.manual_seed(seed)   # the initial weights, and zuko's base noise in training (torch's global generator)
    q = FlowPosterior.from_data(theta, x, cfg.hidden, bounds=task.prior_bounds)
    return _fitted(q, fit_bbvi(BlackBoxVI(task, q), x, schedule, seed))


def _fit_npe(task: SBITask, theta: Tensor, x: Tensor, cfg: SBIConfig, schedule: TrainConfig, seed: int) -> Fitted:
    result = npe.train_npe(task, theta, x, seed)
    return Fitted(lambda x_o, n, s: npe.sample_npe(result, x_o, n, s),
                  [{"validation_loss": v} for v in result.validation_loss])


ESTIMATORS: dict[str, Estimator] = {
    "cvae": Estimator(_fit_cvae, "a conditional VAE (VItamin's layout: recognition, conditional prior and decoder "
                                 "networks), trained on the simulated pairs by the importance-weighted conditional "
                                 "bound through vaelab's training loop"),
    "bbvi": Estimator(_fit_bbvi, "amortised black-box variational inference with a mixture of diagonal Gaussians "
                                 "q(θ | x) trained on the simulated x by the ELBO with the task's likelihood (it "
                                 "needs the likelihood, the others only simulations)"),
    "bbvi_flow": Estimator(_fit_bbvi_flow, "amortised black-box variational inference with a normalising flow "
                                           "q(θ | x) (zuko's neural spline flow, 3 transforms) trained by the same "
                                           "ELBO: a family that can hold two moons' crescents"),
    "npe": Estimator(_fit_npe, "sbi's neural posterior estimation with sbibm's settings (a neural spline flow, "
                               "early stopping), trained by sbi's own loop: the benchmark's anchor"),
}


def check(cfg: SBIConfig, task: str) -> None:
    """A clear ConfigError before any work: an unknown task or estimator, or schedules that do not pair with the
    budgets."""
    if task not in cfg.tasks:
        raise ConfigError(f"params.yaml: sbi.tasks = {cfg.tasks}: no task {task!r}")
    for name in cfg.tasks:
        get_task(name)
    unknown = sorted(set(cfg.estimators) - set(ESTIMATORS))
    if unknown or not cfg.estimators:
        raise ConfigError(f"params.yaml: sbi.estimators = {cfg.estimators}: expected a non-empty list of "
                          f"{sorted(ESTIMATORS)}")
    for key in ("epochs", "batch_sizes"):
        if len(getattr(cfg, key)) != len(cfg.budgets):
            raise ConfigError(f"params.yaml: sbi.{key} = {getattr(cfg, key)}: expected one value per budget "
                              f"(sbi.budgets = {cfg.budgets})")
    if cfg.samples > sbibm_files.REFERENCE_SAMPLES:
        raise ConfigError(f"params.yaml: sbi.samples = {cfg.samples}: sbibm has {sbibm_files.REFERENCE_SAMPLES} "
                          "reference draws per observation; expected at most that")


def schedule(cfg: SBIConfig, budget: int) -> TrainConfig:
    """The CVAE's and BBVI's schedule at ``budget`` simulations (Adam at ``sbi.lr``)."""
    i = cfg.budgets.index(budget)
    return TrainConfig(epochs=cfg.epochs[i], batch_size=cfg.batch_sizes[i], lr=cfg.lr)


@dataclass
class Scored:
    """One estimator at one budget: C2ST per observation, its per-epoch losses, and the first observation's draws
    (the pair plot's)."""

    estimator: str
    budget: int
    c2st: dict[int, float]
    history: list[dict[str, float]]
    draws: Tensor
    # Wall seconds of each part (simulate, train, sample, c2st): for MLflow and the log, never in metrics/ (they
    # are not reproducible).
    seconds: dict[str, float] = field(default_factory=dict)


def references(task: str, cfg: SBIConfig, root: Path) -> dict[int, Tensor]:
    """sbibm's reference posterior draws for each observation of ``cfg``, the first ``cfg.samples`` of its 10,000."""
    return {k: sbibm_files.reference_samples(task, k, root)[:cfg.samples] for k in cfg.observations}


def score(task_name: str, estimator: str, budget: int, cfg: SBIConfig, root: Path) -> Scored:
    """Train ``estimator`` on ``budget`` simulations of the task (the same simulations for every estimator: the seed
    is the study's) and score its draws for each observation by C2ST against sbibm's reference draws."""
    task, seconds = get_task(task_name), dict.fromkeys(("simulate", "train", "sample", "c2st"), 0.0)
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] += now - clock
        clock = now

    theta, x = simulations(task, budget, cfg.seed)
    lap("simulate")
    fitted = ESTIMATORS[estimator].fit(task, theta, x, cfg, schedule(cfg, budget), cfg.seed)
    lap("train")
    refs, scores, first = references(task_name, cfg, root), {}, None
    for k in cfg.observations:
        clock = time.perf_counter()   # reading sbibm's files is none of the four parts
        draws = fitted.sample(sbibm_files.observation(task_name, k, root), cfg.samples, SAMPLE_SEED + k)
        lap("sample")
        scores[k] = c2st(draws, refs[k], seed=C2ST_SEED)
        lap("c2st")
        first = draws if first is None else first
    log.info("sbi %s %s at %d simulations: C2ST %s (%s)", task_name, estimator, budget,
             " ".join(f"{v:.3f}" for v in scores.values()), ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return Scored(estimator, budget, scores, fitted.history, first, seconds)


def calls(task: str, cfg: SBIConfig, root: Path) -> list[tuple]:
    """The arguments of :func:`score`, one call per estimator and budget (the largest budgets first: they take
    longest, and a worker pool finishes sooner when the long calls start first)."""
    return [(task, e, b, cfg, root) for b in sorted(cfg.budgets, reverse=True) for e in cfg.estimators]


def _summary(values: list[float]) -> dict[str, Any]:
    iv = mean_ci(values)
    finite = iv.n > 1
    return {"mean": iv.mean, "low": iv.low if finite else None, "high": iv.high if finite else None, "n": iv.n}


def document(task: str, cfg: SBIConfig, scored: list[Scored]) -> dict[str, Any]:
    """metrics/sbi/<task>.json: the protocol, and per estimator and budget the C2ST of each observation with their
    mean and 95% interval over observations; sbibm's published NPE C2ST for the task where the paper gives it."""
    t = get_task(task)
    out: dict[str, Any] = {
        "task": task, "dim_theta": t.dim_theta, "dim_x": t.dim_x,
        "protocol": {"observations": list(cfg.observations), "samples": cfg.samples, "budgets": list(cfg.budgets),
                     "simulation_seed": cfg.seed, "c2st_seed": C2ST_SEED,
                     "reference": "sbibm 1.1.0's reference posterior samples (first `samples` of 10,000)"},
        "estimators": {},
        "described": {e: ESTIMATORS[e].what for e in cfg.estimators},   # the report's words for each estimator
    }
    for s in sorted(scored, key=lambda s: (cfg.estimators.index(s.estimator), s.budget)):
        entry = out["estimators"].setdefault(s.estimator, {})
        entry[str(s.budget)] = {"c2st": {str(k): v for k, v in s.c2st.items()}, **_summary(list(s.c2st.values())),
                                "epochs": len(s.history)}
    # sbibm's NPE on the same observations (its 10,000 draws a C2ST), and on all ten as the paper averages them.
    out["published_npe"] = {"source": SOURCE, **{
        which: {str(b): npe_c2st(task, b, obs) for b in (1_000, 10_000, 100_000)}
        for which, obs in (("these_observations", list(cfg.observations)), ("all_observations", list(range(1, 11))))}}
    return out
