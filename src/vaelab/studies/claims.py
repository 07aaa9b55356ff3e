"""The blog post's claims as verdicts over seeds, each by one stated rule (pure: no files, no tracking).

A claim (:class:`vaelab.core.config.ClaimSpec`, one entry of params.yaml ``claims:``) says that one model beats
another on one metric, and states the margin below which a difference does not matter in practice. The
evidence is the per-seed difference on the seeds both models have, oriented so that a positive value favours
the claim; the claims of params.yaml are one family of tests, Holm-corrected, and each gets one of four
verdicts, so that "no difference" can be a finding (:data:`RULE`). The "needed less tuning" claim is about a
hyperparameter sweep (:mod:`vaelab.studies.tuning`); :func:`seed_spread` gives the report's spread across seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vaelab.core import stats
from vaelab.core.config import ClaimSpec, flatten
from vaelab.core.errors import ReportError
from vaelab.core.stats import Interval

__all__ = ["ClaimSpec", "Verdict", "VERDICTS", "NEGLIGIBLE", "NOT_APPLICABLE", "ALPHA", "RULE", "judge", "judge_all",
           "alternatives", "robustness", "holds_across", "claims_table", "seed_spread"]

NEGLIGIBLE = "real but negligible"
NOT_APPLICABLE = "not applicable"
VERDICTS = ("supported", "contradicted", NEGLIGIBLE, "equivalent", "inconclusive", NOT_APPLICABLE)
ALPHA = 1 - stats.LEVEL        # 0.05: the family-wise error rate of the claims' tests
SE_SUFFIX = "_se"              # a per-seed metric's image-level standard error sits beside it under this suffix
RULE = ("each seed both models have gives one difference, model minus comparator on the claim's metric, signed so "
        "that a positive value favours the claim. Their mean d has the standard error SE² = s²/n + SE_m² + SE_c², "
        "where s is the differences' sample standard deviation over n seeds and SE_m, SE_c are the two models' "
        "image-level standard errors where the metric records one (`<metric>_se`, mean over seeds; the images are "
        "the same for every seed, so their noise does not show in s; adding both ignores their positive "
        "correlation, which makes SE larger, not smaller); n − 1 degrees of freedom. "
        f"**supported** / **contradicted**: the two-sided t-test of d = 0 rejects at {ALPHA:g} after Holm's "
        "step-down correction over the claims of params.yaml (adjusted p < 0.05), d > 0 / d < 0, and |d| is at least "
        "the claim's margin (**real but negligible**: it rejects, but |d| lies within the margin); the interval shown "
        "is the one of Holm's step for that claim, at level 1 − 0.05/(m − r + 1) for the claim ranked r of m by "
        "p-value. **equivalent**: otherwise, when the two one-sided tests (TOST) against ± the claim's margin of "
        "practical equivalence both reject at 0.05 after the same Holm correction: the difference is shown to be "
        "smaller than the margin. **inconclusive**: neither, or fewer than 2 shared seeds. **not applicable**: the "
        "metric is undefined for a model (null: a jump ratio of a collapsed model, whose images do not move); such a "
        "claim leaves the family. The verdicts against the other models (forking paths) and at the measure's other "
        "settings (robustness) use the same rule at 95% without correction and are not in the family.")
@dataclass(frozen=True)
class Verdict:
    """One claim judged: the per-seed differences (positive = the claim holds), the tests, interval and verdict."""

    spec: ClaimSpec
    differences: tuple[float, ...]
    interval: Interval                     # at ``interval.level``: the claim's Holm level in a family
    verdict: str                           # one of VERDICTS
    model_values: tuple[float, ...] = ()   # the metric per seed, as read (not oriented)
    baseline_values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()            # the seeds both models have, in the model's order
    se: float = math.nan                   # standard error of the mean difference (seed and image level)
    p_value: float = math.nan              # two-sided t-test of d = 0, unadjusted
    p_holm: float = math.nan               # Holm-adjusted over the family
    tost_p: float = math.nan               # max of the two one-sided tests against ± margin, unadjusted
    tost_p_holm: float = math.nan
    image_se: tuple[float, float] = (0.0, 0.0)  # the two models' image-level standard errors in SE (0: none)


def _values(spec: ClaimSpec, role: str, per_seed: Mapping[str, Sequence[Mapping]]
            ) -> tuple[list[float] | None, list[float]]:
    """The claim's metric for ``role`` ("model" or "baseline"), one value per seed, and its image-level standard
    errors where recorded (else empty); None when a seed records it as null (not applicable); or a ReportError
    naming the claim, model and key."""
    model = getattr(spec, role)
    where = f"claim {spec.claim!r}"
    if model not in per_seed:
        raise ReportError(f"{where}: no metrics for its {role} {model!r}; models with metrics: {sorted(per_seed)}")
    runs = per_seed[model]
    if not runs:
        raise ReportError(f"{where}: {role} {model!r} has no seeds")
    out, ses = [], []
    for i, metrics in enumerate(runs):
        flat = flatten(metrics)
        if spec.metric not in flat:
            raise ReportError(f"{where}: metric {spec.metric!r} missing for {role} {model!r} (seed #{i}); "
                              f"its keys: {sorted(flat)}")
        for key, store in ((spec.metric, out), (spec.metric + SE_SUFFIX, ses)):
            if key not in flat:
                continue
            value = flat[key]
            if value is None and key == spec.metric:
                return None, []   # undefined for this model (e.g. collapsed): the claim does not apply
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ReportError(f"{where}: {role} {model!r} {key} = {value!r} (seed #{i}): expected a finite "
                                  "number")
            store.append(float(value))
    return out, ses if len(ses) == len(out) else []


def _t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with df degrees of freedom (scipy)."""
    from scipy import stats as scipy_stats  # imported here: scipy costs every stage that imports claims

    return float(scipy_stats.t.sf(t, df))


def _p_values(mean: float, se: float, df: int, margin: float) -> tuple[float, float]:
    """(two-sided p of d = 0, TOST p against ± margin); a zero SE makes each test certain."""
    if se == 0:
        return (0.0 if mean != 0 else 1.0), (0.0 if abs(mean) < margin else 1.0)
    p = 2 * _t_sf(abs(mean) / se, df)
    tost = max(_t_sf((mean + margin) / se, df), _t_sf((margin - mean) / se, df))
    return min(1.0, p), tost


def _holm(ps: Sequence[float]) -> tuple[list[float], list[int]]:
    """Holm-adjusted p-values, p_(r) = max_{j <= r} min(1, (m − j + 1) p_(j)), and each one's rank r (1-based)."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: (ps[i], i))
    adjusted, ranks, running = [0.0] * m, [0] * m, 0.0
    for r, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - r + 1) * ps[i]))
        adjusted[i], ranks[i] = running, r
    return adjusted, ranks


def _compare(spec: ClaimSpec, per_seed: Mapping[str, Sequence[Mapping]]) -> Verdict:
    """The unadjusted comparison of one claim (its verdict is set by :func:`_decide`)."""
    if spec.better not in ("higher", "lower"):
        raise ReportError(f"claim {spec.claim!r}: better = {spec.better!r}: expected 'higher' or 'lower'")
    (model, se_m), (baseline, se_b) = _values(spec, "model", per_seed), _values(spec, "baseline", per_seed)
    if model is None or baseline is None:
        return Verdict(spec, (), Interval(math.nan, math.nan, math.nan, 0), NOT_APPLICABLE, tuple(model or ()),
                       tuple(baseline or ()))
    if len(model) != len(baseline):
        raise ReportError(f"claim {spec.claim!r}: {len(model)} seeds for model {spec.model!r} but {len(baseline)} "
                          f"for baseline {spec.baseline!r}: a paired comparison needs the same seeds")
    raw = stats.paired_differences(model, baseline)
    # Orient so that positive favours the claim: for "lower is better" the model wins when it is below the baseline.
    diffs = tuple(d if spec.better == "higher" else -d for d in raw)
    n, mean = len(diffs), statistics.fmean(diffs)
    p = tost = se = math.nan
    image = (statistics.fmean(se_m) if se_m else 0.0, statistics.fmean(se_b) if se_b else 0.0)
    if n >= 2:
        se = math.sqrt(statistics.variance(diffs) / n + image[0] ** 2 + image[1] ** 2)
        p, tost = _p_values(mean, se, n - 1, spec.margin)
    return Verdict(spec, diffs, Interval(mean, math.nan, math.nan, n), "inconclusive", tuple(model), tuple(baseline),
                   se=se, p_value=p, tost_p=tost, image_se=image)


def _decide(v: Verdict, p_holm: float, tost_holm: float, level: float) -> Verdict:
    """The verdict at the given Holm-adjusted p-values, with the interval at ``level``."""
    n, mean = v.interval.n, v.interval.mean
    if n < 2:
        return replace(v, interval=Interval(mean, math.nan, math.nan, n, level))
    half = stats.t_quantile(1 - (1 - level) / 2, n - 1) * v.se
    verdict = ((NEGLIGIBLE if abs(mean) < v.spec.margin else "supported" if mean > 0 else "contradicted")
               if p_holm < ALPHA and mean != 0 else "equivalent" if tost_holm < ALPHA else "inconclusive")
    return replace(v, interval=Interval(mean, mean - half, mean + half, n, level), verdict=verdict,
                   p_holm=p_holm, tost_p_holm=tost_holm)


def judge(spec: ClaimSpec, per_seed: Mapping[str, Sequence[Mapping]]) -> Verdict:
    """Judge one claim alone by :data:`RULE` (a family of one: no correction, the 95% interval);
    ``per_seed[model]`` lists the model's (nested) metrics, one dict per seed, in the same seed order for both."""
    v = _compare(spec, per_seed)
    return _decide(v, v.p_value, v.tost_p, stats.LEVEL)


def _paired(spec: ClaimSpec, evals: Mapping[str, Mapping[int, Mapping]]) -> tuple[tuple[int, ...], dict]:
    for role in ("model", "baseline"):
        if getattr(spec, role) not in evals:
            raise ReportError(f"claim {spec.claim!r}: no metrics for its {role} {getattr(spec, role)!r}; models "
                              f"with metrics: {sorted(evals)}")
    common = tuple(s for s in evals[spec.model] if s in evals[spec.baseline])
    return common, {m: [evals[m][s] for s in common] for m in (spec.model, spec.baseline)}


def judge_all(specs: Sequence[ClaimSpec], evals: Mapping[str, Mapping[int, Mapping]]) -> list[Verdict]:
    """Judge every claim of params.yaml as one family (Holm over the claims, :data:`RULE`). ``evals[model][seed]``
    holds that seed's (nested) metrics; each claim pairs its two models on the seeds both have."""
    compared = []
    for spec in specs:
        seeds, per_seed = _paired(spec, evals)
        compared.append(replace(_compare(spec, per_seed), seeds=seeds))
    tested = [i for i, v in enumerate(compared) if v.interval.n >= 2]
    p_holm, ranks = _holm([compared[i].p_value for i in tested])
    tost_holm, _ = _holm([compared[i].tost_p for i in tested])
    out = list(compared)
    for j, i in enumerate(tested):
        out[i] = _decide(compared[i], p_holm[j], tost_holm[j], 1 - ALPHA / (len(tested) - ranks[j] + 1))
    return out


def alternatives(spec: ClaimSpec, evals: Mapping[str, Mapping[int, Mapping]], role: str) -> dict[str, Verdict]:
    """The forking paths of one claim: the verdict (same rule, 95%, uncorrected) with every other model that has the
    claim's metric put in ``role`` ("model": another favoured model against the same comparator; "baseline": the
    same favoured model against another comparator)."""
    out = {}
    for other, per_seed in evals.items():
        if other in (spec.model, spec.baseline) or not per_seed:
            continue
        if any(spec.metric not in flatten(m) for m in per_seed.values()):
            continue   # a model that cannot have the metric (an AE has no prior samples)
        alt = replace(spec, **{role: other})
        seeds, paired = _paired(alt, evals)
        if seeds:
            out[other] = replace(judge(alt, paired), seeds=seeds)
    return out


def robustness(spec: ClaimSpec, evals: Mapping[str, Mapping[int, Mapping]]) -> dict[str, Verdict]:
    """The claim judged alone (95%, uncorrected) with its own metric and with each of its ``variants`` (the same
    quantity at other values of the measure's free settings), keyed by metric: a verdict that changes across them
    depends on a setting, and the report says so."""
    seeds, paired = _paired(spec, evals)
    out = {}
    for metric in (spec.metric, *spec.variants):
        if all(metric in flatten(m) for rows in paired.values() for m in rows):
            out[metric] = replace(judge(replace(spec, metric=metric), paired), seeds=seeds)
    return out


def holds_across(verdicts: Mapping[str, Verdict]) -> bool:
    """Whether every setting's verdict (:func:`robustness`) is the same."""
    return len({v.verdict for v in verdicts.values()}) <= 1


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None   # JSON has no NaN: an undefined bound is null


def _row(v: Verdict) -> dict[str, Any]:
    return {"n_seeds": v.interval.n, "seeds": list(v.seeds), "differences": list(v.differences),
            "mean_difference": _json_number(v.interval.mean), "se": _json_number(v.se),
            "model_image_se": v.image_se[0], "baseline_image_se": v.image_se[1],
            "p_value": _json_number(v.p_value), "p_holm": _json_number(v.p_holm),
            "tost_p": _json_number(v.tost_p), "tost_p_holm": _json_number(v.tost_p_holm),
            "level": v.interval.level, "ci_low": _json_number(v.interval.low), "ci_high": _json_number(v.interval.high),
            "verdict": v.verdict}


def claims_table(verdicts: Sequence[Verdict], forks: Sequence[Mapping[str, Mapping[str, Verdict]]] = (),
                 robust: Sequence[Mapping[str, Verdict]] = ()) -> list[dict[str, Any]]:
    """One JSON-ready row per claim for metrics/claims.json (undefined numbers are null); ``forks[i]`` maps a role
    ("model", "baseline") to :func:`alternatives` of claim i; ``robust[i]`` is :func:`robustness` of claim i."""
    rows = []
    for i, v in enumerate(verdicts):
        row = {"claim": v.spec.claim, "metric": v.spec.metric, "why": v.spec.why, "better": v.spec.better,
               "model": v.spec.model, "baseline": v.spec.baseline, "margin": v.spec.margin,
               "model_values": list(v.model_values), "baseline_values": list(v.baseline_values), **_row(v)}
        keep = ("n_seeds", "mean_difference", "p_value", "level", "ci_low", "ci_high", "verdict")
        if i < len(forks):   # the forking paths, briefly: their per-seed numbers are in metrics/eval/
            row["alternatives"] = {role: {m: {k: _row(a)[k] for k in keep} for m, a in alts.items()}
                                   for role, alts in forks[i].items()}
        if i < len(robust):
            row["robustness"] = {m: {k: _row(a)[k] for k in keep} for m, a in robust[i].items()}
            row["holds_across_settings"] = holds_across(robust[i])
        rows.append(row)
    return rows


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
