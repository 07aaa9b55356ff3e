"""The blog post's claims as verdicts over seeds, each by one stated rule (pure: no files, no tracking).

A claim (:class:`vaelab.config.ClaimSpec`, one entry of params.yaml ``claims:``) says that one model beats
another on one metric. Both are trained over the same seeds, so the evidence is the per-seed difference,
oriented so that a positive value favours the claim, and the verdict is read off its paired Student-t
interval (:data:`RULE`). The "needed less tuning" claim is about a hyperparameter sweep, not seeds:
:func:`tuning_fraction` and :func:`seed_spread` give its numbers, by the rule :data:`TUNING_RULE`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Hashable

from vaelab import stats
from vaelab.config import ClaimSpec, flatten
from vaelab.errors import ReportError
from vaelab.stats import Interval

__all__ = ["ClaimSpec", "Verdict", "VERDICTS", "RULE", "TUNING_RULE", "judge", "claims_table", "tuning_fraction",
           "seed_spread"]

VERDICTS = ("supported", "contradicted", "inconclusive")
LEVEL = stats.LEVEL
RULE = ("each seed gives one difference, model minus baseline on the claim's metric (same seeds, signed so that "
        f"a positive value favours the claim); their paired Student-t interval at {LEVEL:.0%} (n − 1 degrees of "
        "freedom over n seeds) decides: **supported** if the whole interval lies above 0, **contradicted** if it "
        "lies below 0, **inconclusive** if it contains 0 or there are fewer than 2 seeds.")
TUNING_RULE = ("a setting of the sweep counts as good for a model if its test reconstruction error is at most "
               "(1 + margin) times that model's best error over the sweep; the claim compares the fraction of good "
               "settings (more = less tuning needed). Spread across seeds: the coefficient of variation, sample "
               "standard deviation over |mean|, of one setting's per-seed errors.")


@dataclass(frozen=True)
class Verdict:
    """One claim judged: the per-seed differences (positive = the claim holds), their interval and the verdict."""

    spec: ClaimSpec
    differences: tuple[float, ...]
    interval: Interval
    verdict: str                          # one of VERDICTS
    model_values: tuple[float, ...] = ()  # the metric per seed, as read (not oriented)
    baseline_values: tuple[float, ...] = ()


def _values(spec: ClaimSpec, role: str, per_seed: Mapping[str, Sequence[Mapping]]) -> list[float]:
    """The claim's metric for ``role`` ("model" or "baseline"), one value per seed, or a ReportError naming it."""
    model = getattr(spec, role)
    where = f"claim {spec.claim!r}"
    if model not in per_seed:
        raise ReportError(f"{where}: no metrics for its {role} {model!r}; models with metrics: {sorted(per_seed)}")
    runs = per_seed[model]
    if not runs:
        raise ReportError(f"{where}: {role} {model!r} has no seeds")
    out = []
    for i, metrics in enumerate(runs):
        flat = flatten(metrics)
        if spec.metric not in flat:
            raise ReportError(f"{where}: metric {spec.metric!r} missing for {role} {model!r} (seed #{i}); "
                              f"its keys: {sorted(flat)}")
        value = flat[spec.metric]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ReportError(f"{where}: {role} {model!r} {spec.metric} = {value!r} (seed #{i}): expected a finite "
                              "number")
        out.append(float(value))
    return out


def judge(spec: ClaimSpec, per_seed: Mapping[str, Sequence[Mapping]]) -> Verdict:
    """Judge ``spec`` by :data:`RULE`; ``per_seed[model]`` lists the model's (nested) metrics, one dict per seed,
    in the same seed order for every model."""
    if spec.better not in ("higher", "lower"):
        raise ReportError(f"claim {spec.claim!r}: better = {spec.better!r}: expected 'higher' or 'lower'")
    model, baseline = _values(spec, "model", per_seed), _values(spec, "baseline", per_seed)
    if len(model) != len(baseline):
        raise ReportError(f"claim {spec.claim!r}: {len(model)} seeds for model {spec.model!r} but {len(baseline)} "
                          f"for baseline {spec.baseline!r}: a paired comparison needs the same seeds")
    raw = stats.paired_differences(model, baseline)
    # Orient so that positive favours the claim: for "lower is better" the model wins when it is below the baseline.
    diffs = tuple(d if spec.better == "higher" else -d for d in raw)
    iv = stats.mean_ci(diffs, LEVEL)
    if not iv.defined:
        verdict = "inconclusive"      # one seed: no interval, so no verdict either way
    elif iv.low > 0:
        verdict = "supported"
    elif iv.high < 0:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    return Verdict(spec, diffs, iv, verdict, tuple(model), tuple(baseline))


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None   # JSON has no NaN: an undefined bound is null


def claims_table(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """One JSON-ready row per claim for metrics/claims.json (undefined interval bounds are null)."""
    return [{"claim": v.spec.claim, "metric": v.spec.metric, "better": v.spec.better, "model": v.spec.model,
             "baseline": v.spec.baseline, "n_seeds": v.interval.n,
             "model_values": list(v.model_values), "baseline_values": list(v.baseline_values),
             "differences": list(v.differences), "mean_difference": v.interval.mean,
             "ci95_low": _json_number(v.interval.low), "ci95_high": _json_number(v.interval.high),
             "verdict": v.verdict} for v in verdicts]


def tuning_fraction(errors: Mapping[Hashable, float] | Sequence[float], margin: float) -> float:
    """Fraction of a sweep's settings whose test reconstruction error is within ``margin`` (relative) of the
    model's best setting: error <= best · (1 + margin). ``errors`` maps setting -> error (or lists the errors)."""
    values = list(errors.values()) if isinstance(errors, Mapping) else list(errors)
    if not values:
        raise ValueError("tuning_fraction: no settings (expected one error per setting of the sweep)")
    if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"tuning_fraction: margin = {margin!r}: expected a finite number >= 0, e.g. 0.1 for 10%")
    for v in values:
        # A relative margin only makes sense for errors >= 0: best · (1 + margin) must be a looser bound.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
            raise ValueError(f"tuning_fraction: error {v!r}: expected a finite number >= 0")
    bound = min(values) * (1 + margin)
    return sum(v <= bound for v in values) / len(values)


def seed_spread(values: Sequence[float]) -> float:
    """Coefficient of variation across seeds: sample standard deviation (n − 1) over |mean|; unit-free, so
    models whose errors differ in scale compare. nan when undefined (fewer than 2 seeds, or a mean of 0)."""
    xs = [float(v) for v in values]
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"seed_spread: values {list(values)!r}: expected finite numbers")
    if len(xs) < 2:
        return math.nan
    mean = statistics.mean(xs)
    return statistics.stdev(xs, mean) / abs(mean) if mean != 0 else math.nan
