"""The classifier two-sample test (C2ST) exactly as sbibm scores a posterior against its reference samples.

C2ST trains a classifier to tell two samples apart and reports its held-out accuracy: 0.5 when they come from
one distribution, 1.0 when they are told apart perfectly. sbibm (``sbibm/metrics/c2st.py``) uses scikit-learn's
``MLPClassifier`` with two ReLU hidden layers of 10·dim units, adam, ``max_iter=10000`` and no early stopping,
5-fold shuffled cross-validation, ``random_state=seed`` for both, and z-scores both samples with the
*reference* sample's mean and standard deviation (the reference is its first argument, ``X``).

This wraps sbi's own ``c2st`` (``sbi.utils.metrics``), which runs that same procedure, with
``classifier="mlp"``; sbi 0.27's defaults for "mlp" differ from sbibm's (``max_iter=1000``,
``early_stopping=True``, ``n_iter_no_change=50``), so sbibm's settings are passed explicitly. What the wrapper
adds: float32 inputs (sbibm's dtype), shape and finiteness checks, equal sample sizes (the larger sample is
subsampled, seeded, so that chance accuracy is 0.5), and a plain float.
"""

from __future__ import annotations

from typing import Any

import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

N_FOLDS = 5  # sbibm's n_folds


def sbibm_mlp_kwargs(dim: int) -> dict[str, Any]:
    """sbibm's ``MLPClassifier`` settings for ``dim``-dimensional samples (``random_state`` is sbi's ``seed``)."""
    return {"activation": "relu", "hidden_layer_sizes": (10 * dim, 10 * dim), "max_iter": 10000, "solver": "adam"}


def _equal_sizes(a: Tensor, b: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Subsample the larger of ``a`` and ``b`` (without replacement, seeded) to the size of the smaller."""
    n = min(a.shape[0], b.shape[0])
    generator = torch.Generator().manual_seed(seed)
    pick = lambda s: s if s.shape[0] == n else s[torch.randperm(s.shape[0], generator=generator)[:n]]  # noqa: E731
    return pick(a), pick(b)


def c2st(samples: Tensor, reference: Tensor, seed: int = 1) -> float:
    """C2ST accuracy of ``samples`` [n, d] against ``reference`` [m, d] (z-scored with the reference's moments).

    ``seed`` fixes the subsampling, the classifier's initialisation and the folds, so equal inputs give equal
    results (sbibm's default seed is 1).
    """
    from sbi.utils.metrics import c2st as sbi_c2st  # sbi pulls in much: import it only when a C2ST is run

    samples = torch.as_tensor(samples).detach().cpu().to(torch.float32)
    reference = torch.as_tensor(reference).detach().cpu().to(torch.float32)
    if samples.ndim != 2 or reference.ndim != 2 or samples.shape[1] != reference.shape[1]:
        raise ValueError(f"c2st: expected two samples [n, d] and [m, d], got {tuple(samples.shape)} and "
                         f"{tuple(reference.shape)}")
    if min(samples.shape[0], reference.shape[0]) < 2 * N_FOLDS:
        raise ValueError(f"c2st: expected at least {2 * N_FOLDS} draws in each sample, got {samples.shape[0]} "
                         f"and {reference.shape[0]}")
    for what, s in (("samples", samples), ("reference", reference)):
        if not torch.isfinite(s).all():
            raise ValueError(f"c2st: {what} contain NaN or infinite values")
    reference, samples = _equal_sizes(reference, samples, seed)
    # scikit-learn's MLP multiplies in numpy's BLAS: one thread, as every worker of the stages (the same result
    # however many workers share the cores).
    with threadpool_limits(limits=1, user_api="blas"):
        accuracy = sbi_c2st(reference, samples, seed=seed, n_folds=N_FOLDS, classifier="mlp",
                            classifier_kwargs=sbibm_mlp_kwargs(samples.shape[1]), z_score=True)
    return float(accuracy)
