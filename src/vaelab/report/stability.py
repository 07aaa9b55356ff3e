"""The claims on a second, disjoint set of seeds: reports/<sweep>.md and .json. The sweep (params.yaml
`sweeps.seeds2`) is one DVC experiment that re-trains and re-evaluates the claims' models with other seeds; here
params.yaml `claims` are judged by the study's own rule (:func:`vaelab.studies.claims.judge_all`) on its metrics
and on the baseline commit's, side by side. A claim whose verdict differs between the two sets is unstable.
Not a stage: a stage cannot depend on the queue's experiments (README "Sweeps")."""

from __future__ import annotations

import math
from typing import Any

from vaelab.core.config import Params
from vaelab.core.errors import ReportError
from vaelab.studies import claims
from vaelab.studies.sweeps import exp_rows


def evals_of(data: dict, models: list[str]) -> dict[str, dict[int, dict]]:
    """``evals[model][seed]`` (as the report reads metrics/eval/<model>.json) from one row of `dvc exp show --json`."""
    metrics = data.get("metrics") or {}
    out = {}
    for m in models:
        entry = (metrics.get(f"metrics/eval/{m}.json") or {}).get("data") or {}
        out[m] = {int(k[4:]): v for k, v in entry.items() if k.startswith("seed") and k[4:].isdigit()}
    return out


def _side(v: claims.Verdict) -> dict[str, Any]:
    number = lambda x: x if math.isfinite(x) else None   # noqa: E731 (JSON has no NaN: an undefined bound is null)
    return {"seeds": list(v.seeds), "verdict": v.verdict, "mean_difference": number(v.interval.mean),
            "ci_low": number(v.interval.low), "ci_high": number(v.interval.high)}


def document(params: Params, name: str, exp_show: list[dict]) -> dict[str, Any]:
    """Each claim's verdict on the baseline commit's seeds and on experiment ``<name>-*``'s, and whether they agree."""
    base, rows = exp_rows(exp_show)
    found = [(n, d) for n, d in rows[1:] if n.startswith(f"{name}-")]
    if not found:
        raise ReportError(f"`dvc exp show`: no finished experiment named {name}-*; queue it with "
                          f"`python stages/sweep.py {name}` and `dvc queue start -j 1`")
    exp, data = found[-1]
    first = claims.judge_all(params.claims, evals_of(base, list(params.models)))
    second = claims.judge_all(params.claims, evals_of(data, list(params.models)))
    out = []
    for a, b in zip(first, second):
        shared = sorted(set(a.seeds) & set(b.seeds))
        if shared:
            raise ReportError(f"claim {a.spec.claim!r}: the two seed sets share seeds {shared}; experiment {exp} "
                              f"must set other seeds for {a.spec.model} and {a.spec.baseline}")
        out.append({"claim": a.spec.claim, "metric": a.spec.metric, "model": a.spec.model,
                    "baseline": a.spec.baseline, "first": _side(a), "second": _side(b),
                    "stable": a.verdict == b.verdict})
    return {"experiment": exp, "claims": out}


def report(doc: dict[str, Any], name: str) -> str:
    """reports/<name>.md: one row per claim, both seed sets' verdicts and intervals, stable or not."""
    def cell(side: dict) -> str:
        seeds = side["seeds"]
        span = f"{seeds[0]}–{seeds[-1]}" if seeds else "none"
        if side["ci_low"] is None or side["ci_high"] is None:
            return f"{side['verdict']} (seeds {span})"
        return f"{side['verdict']} [{side['ci_low']:.3g}, {side['ci_high']:.3g}] (seeds {span})"
    lines = [f"# The claims on a second seed set (`{name}`)", "",
             f"Each claim of params.yaml `claims`, judged by the study's rule (Holm over the claims) on the baseline "
             f"commit's seeds and on experiment `{doc['experiment']}`'s, which re-trained the claims' models with "
             "other seeds. A claim whose verdict differs between them is **unstable**.", "",
             "| claim | first set | second set | stable |", "| --- | --- | --- | --- |"]
    lines += [f"| {c['claim']} | {cell(c['first'])} | {cell(c['second'])} | "
              f"{'yes' if c['stable'] else '**no**'} |" for c in doc["claims"]]
    return "\n".join(lines) + "\n"
