"""The post's claims as verdicts over seeds, by one stated rule.

(Lead's minimal version; the stats helper's fuller module replaces it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaelab.config import ClaimSpec, flatten
from vaelab.errors import ReportError
from vaelab.stats import Interval, mean_ci

VERDICTS = ("supported", "contradicted", "inconclusive")
RULE = ("a paired 95% Student-t interval of the per-seed differences (same seeds, model minus baseline, signed so "
        "that positive favours the claim): **supported** if the interval lies above 0, **contradicted** if it lies "
        "below 0, **inconclusive** otherwise or with fewer than 2 seeds.")


@dataclass(frozen=True)
class Verdict:
    spec: ClaimSpec
    differences: list[float]
    interval: Interval
    verdict: str


def judge(spec: ClaimSpec, per_seed: dict[str, list[dict]]) -> Verdict:
    values = {}
    for role in ("model", "baseline"):
        model = getattr(spec, role)
        if model not in per_seed:
            raise ReportError(f"claim {spec.claim!r}: no metrics for {role} {model!r}")
        flat = [flatten(m) for m in per_seed[model]]
        if any(spec.metric not in f for f in flat):
            raise ReportError(f"claim {spec.claim!r}: metric {spec.metric!r} missing for {role} {model!r}")
        values[role] = [f[spec.metric] for f in flat]
    sign = 1.0 if spec.better == "higher" else -1.0
    diffs = [sign * (a - b) for a, b in zip(values["model"], values["baseline"])]
    iv = mean_ci(diffs)
    verdict = ("inconclusive" if iv.n < 2 or math.isnan(iv.low) else
               "supported" if iv.low > 0 else "contradicted" if iv.high < 0 else "inconclusive")
    return Verdict(spec, diffs, iv, verdict)


def claims_table(verdicts: list[Verdict]) -> list[dict]:
    return [{"claim": v.spec.claim, "metric": v.spec.metric, "better": v.spec.better, "model": v.spec.model,
             "baseline": v.spec.baseline, "differences": v.differences, "mean_difference": v.interval.mean,
             "ci95_low": None if math.isnan(v.interval.low) else v.interval.low,
             "ci95_high": None if math.isnan(v.interval.high) else v.interval.high, "verdict": v.verdict}
            for v in verdicts]
