"""How vaelab names its numbers in MLflow: keys grouped with ``/``, so that the UI's chart view makes one section
per group (the key up to its last ``/``), and the names a model's parent run gives its across-seed summaries.

MLflow 3.17 orders the sections alphabetically, so the names are chosen for that order: first the per-epoch
curves, ``epoch/<term>/<split>`` (``epoch/loss/train`` beside ``epoch/loss/test``: one term's two curves in one
section) and ``epoch/decoder/<name>`` (a learned σ); then the evaluation's single values ``eval/<group>/<name>``
(``eval/elbo/neg_elbo``); last, on a parent run, ``seeds_ci95/<key>``: the half-width of the 95% interval.

The history CSVs (``plots/history``) keep their flat column names (``test_loss``): they are DVC outputs, and
DVC plots read them by those names.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

# The per-epoch key that tells a resumed run which epochs it has logged.
EPOCH_KEY = "epoch/loss/test"
# A parent run logs the mean over seeds under each seed run's own key (so one runs-table column compares a
# model's mean with its seeds) and the half-width of the 95% Student-t interval under this prefix + the key.
CI_PREFIX = "seeds_ci95/"


def epoch_metrics(train: dict[str, float], test: dict[str, float], diagnostics: dict[str, float]) -> dict[str, float]:
    """One epoch's numbers: ``epoch/<term>/train``, ``epoch/<term>/test`` and ``epoch/decoder/<name>``."""
    out = {f"epoch/{k}/{split}": v for split, terms in (("train", train), ("test", test)) for k, v in terms.items()}
    out.update({f"epoch/decoder/{k}": v for k, v in diagnostics.items()})
    return out


def eval_metrics(flat: dict[str, float | None]) -> dict[str, float]:
    """The evaluate stage's numbers (dotted keys of metrics/eval/<model>.json) as ``eval/<group>/<name>``; a number
    that does not apply to the model (null: a collapsed model's jump ratio) is not logged: MLflow has no null."""
    return {"eval/" + k.replace(".", "/"): v for k, v in flat.items() if v is not None}


def across_seeds(intervals: Mapping[str, Any]) -> dict[str, float]:
    """A parent run's summary of its seeds from each key's interval over seeds (:func:`vaelab.core.stats.across_seeds`:
    objects with ``mean``, ``low``, ``high``): the mean under the key, and the half-width of the interval under
    ``seeds_ci95/<key>`` (left out with one seed, where there is no spread to estimate)."""
    out: dict[str, float] = {}
    for key, iv in intervals.items():
        out[key] = iv.mean
        if not math.isnan(iv.high):
            out[CI_PREFIX + key] = (iv.high - iv.low) / 2
    return out
