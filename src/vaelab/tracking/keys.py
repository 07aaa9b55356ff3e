"""How vaelab names its numbers in MLflow: keys grouped with ``/`` (``train/loss``, ``test/loss``,
``eval/elbo/neg_elbo``), so that the UI's chart view makes one section per group, and the names a model's
parent run gives its across-seed summaries.

The history CSVs (``plots/history``) keep their flat column names (``test_loss``): they are DVC outputs, and
DVC plots read them by those names.
"""

from __future__ import annotations

import math

from vaelab import stats

# The per-epoch key that tells a resumed run which epochs it has logged.
EPOCH_KEY = "test/loss"
# A parent run logs the mean over seeds under each seed run's own key (so one runs-table column compares a
# model's mean with its seeds) and the half-width of the 95% Student-t interval under ``<key>`` + this.
CI_SUFFIX = "_ci95"


def epoch_metrics(train: dict[str, float], test: dict[str, float], diagnostics: dict[str, float]) -> dict[str, float]:
    """One epoch's numbers: ``train/<term>``, ``test/<term>`` and ``decoder/<name>`` (e.g. a learned σ)."""
    out = {f"train/{k}": v for k, v in train.items()}
    out.update({f"test/{k}": v for k, v in test.items()})
    out.update({f"decoder/{k}": v for k, v in diagnostics.items()})
    return out


def eval_metrics(flat: dict[str, float]) -> dict[str, float]:
    """The evaluate stage's numbers (dotted keys of metrics/eval/<model>.json) as ``eval/<group>/<name>``."""
    return {"eval/" + k.replace(".", "/"): v for k, v in flat.items()}


def across_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """A parent run's summary of its seeds: for every key the mean, and ``<key>_ci95`` the half-width of its 95%
    Student-t interval (left out with one seed, where there is no spread to estimate)."""
    out: dict[str, float] = {}
    for key in per_seed[0]:
        iv = stats.mean_ci([m[key] for m in per_seed])
        out[key] = iv.mean
        if not math.isnan(iv.high):
            out[key + CI_SUFFIX] = (iv.high - iv.low) / 2
    return out
