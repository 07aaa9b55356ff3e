"""The SBI benchmark's anchor, run here: sbi's neural posterior estimation (NPE) with sbibm's settings, on the
same simulations and observations as vaelab's own posterior estimators.

sbibm's NPE (``sbibm/algorithms/sbi/snpe.py`` with ``num_rounds=1``) is sbi's ``SNPE_C`` (now ``NPE``) with a
neural spline flow (``posterior_nn(model="nsf", hidden_features=50)``, 5 transforms, θ and x z-scored per
dimension), one round on prior simulations, trained with ``training_batch_size=10000`` (capped at the budget)
and sbi's early stopping (20 epochs without a better validation loss on 10% held out). The same here; sbi's
own training loop runs it (it is the anchor as sbi ships it, not a network of vaelab's loop). sbi draws from
torch's global generator, so each call seeds it first: the same seed gives the same network and samples.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaelab.core.errors import ConfigError
from vaelab.sbi.tasks import SBITask

# sbibm's NPE settings (snpe.py's defaults, one round).
NEURAL_NET = "nsf"
HIDDEN_FEATURES = 50
TRAINING_BATCH_SIZE = 10_000


class _Untracked:
    """sbi's tracker protocol, recording nothing: sbi's default writes TensorBoard logs to ``./sbi-logs`` (into the
    working tree). The training curve comes back in :class:`NPEResult`; the stage logs it to MLflow."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


@dataclass
class NPEResult:
    """A trained NPE posterior and what its training took."""

    posterior: Any          # sbi's DirectPosterior
    epochs: int
    train_s: float
    validation_loss: list[float]  # per epoch (sbi's summary): the curve a tracking run logs


def train_npe(task: SBITask, theta: Tensor, x: Tensor, seed: int, max_num_epochs: int = 2**31 - 1) -> NPEResult:
    """Train NPE on the simulations (``theta`` [n, dim_theta], ``x`` [n, dim_x]) with sbibm's settings."""
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    if theta.shape[0] != x.shape[0] or theta.shape[1:] != (task.dim_theta,) or x.shape[1:] != (task.dim_x,):
        raise ConfigError(f"NPE on {task.name}: expected theta [n, {task.dim_theta}] and x [n, {task.dim_x}], "
                          f"got {tuple(theta.shape)} and {tuple(x.shape)}")
    torch.manual_seed(seed)
    builder = posterior_nn(model=NEURAL_NET, hidden_features=HIDDEN_FEATURES)
    inference = NPE(prior=task.prior, density_estimator=builder, show_progress_bars=False, tracker=_Untracked())
    start = time.perf_counter()
    estimator = inference.append_simulations(theta.float(), x.float()).train(
        training_batch_size=min(TRAINING_BATCH_SIZE, theta.shape[0]), max_num_epochs=max_num_epochs)
    train_s = time.perf_counter() - start
    summary = inference.summary
    return NPEResult(inference.build_posterior(estimator), int(summary["epochs_trained"][-1]), train_s,
                     [float(v) for v in summary["validation_loss"]])


def sample_npe(result: NPEResult, x_o: Tensor, n: int, seed: int) -> Tensor:
    """``n`` posterior samples [n, dim_theta] given one observation ``x_o`` [1, dim_x] (inside the prior's support:
    sbi rejects draws the prior excludes)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():   # nflows' LU transform calls a torch function deprecated since 2.x, per draw
        warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated")
        return result.posterior.sample((n,), x=x_o.float(), show_progress_bars=False).detach()
