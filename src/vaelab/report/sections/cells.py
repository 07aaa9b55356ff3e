"""The report's inputs (:class:`Inputs`, read from the pipeline's outputs by :mod:`vaelab.report.document`) and
its number formats: per-seed numbers as mean ± 95% interval cells, one format per metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vaelab.core import stats
from vaelab.core.config import flatten
from vaelab.report.render import MISSING, Table
from vaelab.studies import claims
from vaelab.viz.model_figures import model_label


@dataclass(frozen=True)
class Inputs:
    """Everything the report shows, read from the pipeline's outputs."""

    models: list[str]
    seeds: dict[str, list[int]]              # model -> its seeds (params.yaml `seeds`, or the entry's own)
    figures: dict[str, list[str]]            # model -> figure kinds drawn (files in reports/figures/<model>/)
    train: dict[str, dict[int, dict]]        # model -> seed -> final train/test terms
    evals: dict[str, dict[int, dict]]        # model -> seed -> evaluation metrics
    verdicts: list[claims.Verdict]
    image_sets: dict[str, dict[str, str]]               # model -> JSON group -> the id of its image set
    forks: list[dict[str, dict[str, claims.Verdict]]]   # per claim: role -> other model -> its verdict
    judge_accuracy: float | None = None
    post_ae: dict[str, str] = field(default_factory=dict)  # model -> what it is, in words ("What it took ...")
    inference: dict[str, dict] = field(default_factory=dict)  # metrics/inference.json
    sigma_figure: str | None = None                           # σ per epoch of the calibrated Gaussians
    fixed_sigma: tuple[str, ...] = ()                         # models whose Gaussian decoder has a fixed σ
    quadrants: dict = field(default_factory=dict)             # metrics/quadrants.json (quadrant completion)
    baselines: dict = field(default_factory=dict)             # metrics/baselines.json: image-set id -> baseline -> numbers
    references: dict = field(default_factory=dict)            # metrics/references.json: the same for every model
    collapse: dict = field(default_factory=dict)              # metrics/collapse.json: the post's AE's first steps
    tuning: dict = field(default_factory=dict)                # reports/tuning.json: the `tuning` sweep's document
    robust: list[dict[str, claims.Verdict]] = field(default_factory=list)  # per claim: metric -> verdict alone (95%)
    settings: dict[str, object] = field(default_factory=dict)  # the `evaluate` params that headings print (K, ..)
    sbi: dict[str, dict] = field(default_factory=dict)         # task -> metrics/sbi/<task>.json (the SBI study)



def decimals_for(x: float, digits: int) -> int:
    """Decimal places that show ``x`` to ``digits`` significant digits."""
    return digits - 1 - math.floor(math.log10(abs(x))) if x else 0



def shared_decimals(intervals: list[stats.Interval | None]) -> int | None:
    """The decimal places of one metric's intervals (a table's row or column), so that they read alike: the
    narrowest nonzero half-width to 2 significant digits, so no model's interval loses its precision (no nonzero
    half-width: the largest mean to 4). None where fixed point would be unreadable (then each interval keeps
    :func:`stats.format_interval`'s own form)."""
    shown = [iv for iv in intervals if iv is not None and iv.defined]
    if not shown or len(shown) < len([iv for iv in intervals if iv is not None]):
        return None
    spreads = [float(f"{iv.half_width:.2g}") for iv in shown if iv.half_width > 0]
    decimals = max(0, decimals_for(min(spreads), 2) if spreads else decimals_for(max(abs(iv.mean) for iv in shown), 4))
    return None if decimals > 12 or any(abs(iv.mean) >= 1e12 for iv in shown) else decimals



def interval_cells(intervals: list[stats.Interval | None]) -> list[str]:
    """"mean ± half-width" for each interval of one metric, all to the same decimal places (a nonzero half-width
    too small for them shows as one unit of the last place, never as 0); :data:`MISSING` for None."""
    decimals = shared_decimals(intervals)

    def one(iv: stats.Interval | None) -> str:
        if iv is None:
            return MISSING
        if decimals is None:
            return stats.format_interval(iv)
        half = round(iv.half_width, decimals) or (10.0 ** -decimals if iv.half_width > 0 else 0.0)
        return f"{iv.mean:.{decimals}f} ± {half:.{decimals}f}"
    return [one(iv) for iv in intervals]



def number_cells(values: list[float | None], digits: int = 3) -> list[str]:
    """Plain numbers of one metric to the same decimal places: the largest to ``digits`` significant digits."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    decimals = max(0, decimals_for(max(finite), digits)) if finite else 0
    return [f"{v:.{decimals}f}" if v is not None and math.isfinite(v) else MISSING for v in values]



def interval_table(per_model: dict[str, dict[int, dict]], models: list[str]) -> Table:
    """Rows [metric, mean ± 95% interval per model] over the union of flattened keys, first-seen order."""
    flat = {m: {s: flatten(v) for s, v in per_model.get(m, {}).items()} for m in models}
    keys = list(dict.fromkeys(k for m in models for per_seed in flat[m].values() for k in per_seed))
    rows = []
    for key in keys:
        per = [[v[key] for v in flat[m].values() if v.get(key) is not None and math.isfinite(v[key])] for m in models]
        rows.append([f"`{key}`", *interval_cells([stats.mean_ci(values) if values else None for values in per])])
    return Table(["metric", *[model_label(m) for m in models]], rows)



def mean_ci_of(inp: Inputs, model: str, key: str) -> stats.Interval | None:
    values = [flatten(v).get(key) for v in inp.evals.get(model, {}).values()]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return stats.mean_ci(values) if values else None



def reference_value(inp: Inputs, key: str) -> float | None:
    """A number of ``metrics/references.json``: measured once, the same for every model and seed."""
    value = flatten(inp.references).get(key)
    return value if value is not None and math.isfinite(value) else None



def reference_cell(inp: Inputs, key: str) -> str:
    return number_cells([reference_value(inp, key)], digits=4)[0]



def seeds_sentence(seeds: dict[str, list[int]]) -> str:
    """'Each model was trained with 3 seeds (42, 43, 44); ae and vae_bce with 10 (42-51).' from model -> seeds."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for m, s in seeds.items():
        groups.setdefault(tuple(s), []).append(m)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))   # the most common set first: "each model"

    def listed(s: tuple[int, ...]) -> str:
        n = len(s)
        run = n > 2 and list(s) == list(range(s[0], s[0] + n))
        return f"{n} seed{'s' if n > 1 else ''} ({f'{s[0]}–{s[-1]}' if run else ', '.join(map(str, s))})"

    (common, _), rest = ordered[0], ordered[1:]
    text = f"Each model was trained with {listed(common)}"
    for s, ms in rest:
        text += f"; {', '.join(ms)} with {listed(s)}"
    return text + "."
