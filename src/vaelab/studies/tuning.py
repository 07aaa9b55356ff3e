"""What a queued sweep found, by rules fixed before it ran (params.yaml `tuning`): which seeds failed, which
settings work for each model, the share of working settings with an interval over seeds, and the verdict on "the
VAE needed less tuning". Pure functions over ``dvc exp show --json`` (stages/tuning.py is the I/O around them).

A **sweep** is the experiments whose names start with one prefix (stages/sweep.py queues them). A **setting** of a
model is its experiment's values of the keys of `train` and of that model's own `models:` entry that vary within the
sweep (e.g. ``lr``, ``batch_size``, ``hidden``). Every setting trains the same seeds; seed k of every setting and model is
one resampling unit of the bootstrap: the interval of a share, or of two models' difference, is the exact bootstrap
over the seeds (every one of the n^n resamples, equally likely, up to 6 seeds), so it shows how much the verdict leans on which
seeds were drawn. It does not show the uncertainty of having chosen these settings (the grid is fixed).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from vaelab import models as registry
from vaelab.core import stats
from vaelab.core.config import Params, TuningConfig
from vaelab.core.errors import ReportError
from vaelab.measures.capabilities import Needs
from vaelab.studies.sweeps import exp_params, exp_rows, finished_span

FULL_PREFIX = "full"  # a sweep's best settings at the study's epochs: experiments named full-<sweep>-<model>
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive")
RULE = ("A seed **failed** (collapsed, or did not learn within the sweep's epochs) when more than {saturated:.0%} "
        "of its test codes are saturated, or its codes' 10-NN digit accuracy is at most {knn}, or its test squared "
        "error per image is at least {mse} (the mean image's is 52.9). "
        "A setting **works** for a model when none of its seeds failed and its mean test error is at most "
        "(1 + {margin}) times that of the model's best working setting; it **works by the latent** when none "
        "failed and its mean kNN accuracy is at least the model's best minus {knn_margin}. "
        "The claim compares two models' shares of working settings: the difference (VAE minus AE) has an exact "
        "bootstrap interval over seeds at level {family_level:.4f} ({level:.0%} with Bonferroni over the {comparisons} "
        "comparisons). **supported**: the interval lies above 0; **contradicted**: below 0; **equivalent**: inside "
        "±{equivalence}; otherwise **inconclusive**.")


@dataclass(frozen=True)
class Seed:
    """One seed of one model at one setting: test squared error per image (metrics/train), and from its evaluation
    the codes' kNN digit accuracy and saturated share (None where the model's code is unbounded)."""

    mse: float
    knn: float
    saturated: float | None


@dataclass(frozen=True)
class Outcome:
    """One model at one setting (what varies within the sweep) and its seeds."""

    model: str
    setting: dict[str, Any]
    seeds: dict[str, Seed]
    exp: str

    @property
    def key(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.setting.items()) or "the only setting"


def _seed_values(data: dict, path: str) -> dict[str, dict]:
    entry = ((data.get("metrics") or {}).get(path) or {}).get("data") or {}
    return {k: v for k, v in entry.items() if k.startswith("seed") and isinstance(v, dict)}


def _seeds(data: dict, model: str) -> dict[str, Seed]:
    train = _seed_values(data, f"metrics/train/{model}.json")
    evals = _seed_values(data, f"metrics/eval/{model}.json")
    out = {}
    for seed in sorted(train.keys() & evals.keys()):
        latent = evals[seed].get("latent") or {}
        if "mse" in (train[seed].get("test") or {}) and "knn_accuracy" in latent:
            out[seed] = Seed(train[seed]["test"]["mse"], latent["knn_accuracy"], latent.get("saturated_fraction"))
    return out


def outcomes(exp_show: list[dict], prefix: str, models: Sequence[str]) -> list[Outcome]:
    """Every (model, setting) of the sweep ``prefix`` whose experiment has both metrics files of that model, in the
    order of the experiments' names."""
    _, rows = exp_rows(exp_show)
    found: dict[tuple[str, str], Outcome] = {}
    for name, data in rows[1:]:
        if not name.startswith(prefix):
            continue
        params = exp_params(data)
        for model in models:
            own = f"models.{model}."
            changed = {(k[len(own):] if k.startswith(own) else k.split(".", 1)[1]): v for k, v in sorted(params.items())
                       if k.startswith(own) or k.startswith("train.")}
            seeds = _seeds(data, model)
            if seeds:
                outcome = Outcome(model, changed, seeds, name)
                found.setdefault((model, outcome.key), outcome)
    varied = [o for m in models for o in _varied([o for o in found.values() if o.model == m])]
    return sorted(varied, key=lambda o: o.exp)


def _varied(outs: list[Outcome]) -> list[Outcome]:
    """One model's outcomes with only the settings that vary within the sweep (what every point sets is not a
    setting)."""
    keys = {k for o in outs for k in o.setting}
    fixed = {k for k in keys if len({repr(o.setting.get(k)) for o in outs}) == 1}
    return [Outcome(o.model, {k: v for k, v in o.setting.items() if k not in fixed}, o.seeds, o.exp) for o in outs]


def failed(seed: Seed, rule: TuningConfig) -> bool:
    """The rule's failed seed: a saturated code, codes that do not separate the digits, or the mean image's error."""
    return ((seed.saturated is not None and seed.saturated > rule.saturated) or seed.knn <= rule.knn
            or seed.mse >= rule.mse)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def works(outs: Sequence[Outcome], rule: TuningConfig, seeds: Sequence[str] | None = None) -> dict[str, dict[str, bool]]:
    """For one model's outcomes: per setting key, ``{"error": works by test error, "latent": works by the latent}``,
    over ``seeds`` (a resample; default every seed)."""
    stats = {}
    for o in outs:
        picked = [o.seeds[s] for s in (seeds if seeds is not None else list(o.seeds))]
        stats[o.key] = (any(failed(s, rule) for s in picked), _mean([s.mse for s in picked]),
                        _mean([s.knn for s in picked]))
    alive = [v for v in stats.values() if not v[0]]
    best_mse = min((v[1] for v in alive), default=math.inf)
    best_knn = max((v[2] for v in alive), default=-math.inf)
    return {k: {"error": not dead and mse <= (1 + rule.margin) * best_mse,
                "latent": not dead and knn >= best_knn - rule.knn_margin} for k, (dead, mse, knn) in stats.items()}


def share(outs: Sequence[Outcome], rule: TuningConfig, by: str, seeds: Sequence[str] | None = None) -> float:
    judged = works(outs, rule, seeds)
    return _mean([float(v[by]) for v in judged.values()])


def common_seeds(outs: Sequence[Outcome]) -> list[str]:
    """The seeds every outcome has (the resampling units)."""
    seeds = set.intersection(*(set(o.seeds) for o in outs))
    return sorted(seeds)


EXACT_UP_TO = 6  # seeds: up to 6^6 = 46,656 resamples are enumerated; beyond, a seeded random draw of them


def resamples(seeds: Sequence[str], draws: int = 2000) -> list[tuple[str, ...]]:
    """Every ordered resample with replacement of ``seeds`` (n^n of them, each as likely: the exact bootstrap);
    beyond :data:`EXACT_UP_TO` seeds, ``draws`` of them drawn by a fixed seed (the same every run)."""
    if len(seeds) <= EXACT_UP_TO:
        return list(itertools.product(seeds, repeat=len(seeds)))
    rng = random.Random(0)
    return [tuple(rng.choice(seeds) for _ in seeds) for _ in range(draws)]


def quantile(values: Sequence[float], q: float) -> float:
    """The inverted-CDF quantile (the smallest value whose empirical CDF reaches q), as numpy's ``inverted_cdf``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered) - 1e-12) - 1)]


def verdict(low: float, high: float, equivalence: float) -> str:
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    if -equivalence <= low and high <= equivalence:
        return "equivalent"
    return "inconclusive"


def compare(by_model: dict[str, list[Outcome]], vae: str, ae: str, rule: TuningConfig, by: str,
            level: float) -> dict[str, Any]:
    """VAE minus AE share of working settings: the estimate, its exact bootstrap interval over the seeds both
    have, and the verdict."""
    seeds = common_seeds(by_model[vae] + by_model[ae])
    diffs = [share(by_model[vae], rule, by, r) - share(by_model[ae], rule, by, r) for r in resamples(seeds, rule.resamples)]
    alpha = 1 - level
    low, high = quantile(diffs, alpha / 2), quantile(diffs, 1 - alpha / 2)
    estimate = share(by_model[vae], rule, by) - share(by_model[ae], rule, by)
    return {"vae": vae, "ae": ae, "by": by, "difference": estimate, "low": low, "high": high,
            "verdict": verdict(low, high, rule.equivalence)}


def share_interval(outs: Sequence[Outcome], rule: TuningConfig, by: str, level: float) -> tuple[float, float]:
    values = [share(outs, rule, by, r) for r in resamples(common_seeds(outs), rule.resamples)]
    return quantile(values, (1 - level) / 2), quantile(values, 1 - (1 - level) / 2)


def study(outs: list[Outcome], vaes: Sequence[str], aes: Sequence[str], rule: TuningConfig) -> dict[str, Any]:
    """The sweep's document (reports/tuning.json): the rule, every per-seed outcome, each model's shares with
    intervals, and the verdict of every VAE-vs-AE comparison, by test error and by the latent."""
    by_model = {m: [o for o in outs if o.model == m] for m in [*vaes, *aes]}
    by_model = {m: o for m, o in by_model.items() if o}
    pairs = [(v, a) for v in vaes for a in aes if v in by_model and a in by_model]
    level = 1 - (1 - rule.level) / max(1, len(pairs))
    models = {}
    for m, o in by_model.items():
        judged = works(o, rule)
        models[m] = {"settings": [{"setting": x.setting, "key": x.key, "exp": x.exp, "works": judged[x.key],
                                   "failed": {s: failed(v, rule) for s, v in x.seeds.items()},
                                   "seeds": {s: asdict(v) for s, v in x.seeds.items()}} for x in o],
                     **{f"share_{by}": share(o, rule, by) for by in ("error", "latent")},
                     **{f"share_{by}_interval": share_interval(o, rule, by, rule.level) for by in ("error", "latent")}}
    return {"rule": asdict(rule), "family_level": level,
            "models": models,
            "comparisons": [compare(by_model, v, a, rule, by, level) for v, a in pairs for by in ("error", "latent")]}


def rule_text(rule: TuningConfig, comparisons: int) -> str:
    """The rule in words, with its numbers (without the verdict's part when the sweep compares no models)."""
    level = 1 - (1 - rule.level) / max(1, comparisons)
    text = RULE if comparisons else RULE[:RULE.index(" The claim compares")]
    return text.format(**{k: getattr(rule, k) for k in ("saturated", "knn", "mse", "margin", "knn_margin",
                                                         "equivalence", "level")}, family_level=level, comparisons=comparisons)



VAE = Needs(prior=True)  # a sweep's models with a prior are its VAEs, the others its AEs


def collect(params: Params, name: str, models: Sequence[str], exp_show: list[dict]) -> dict[str, Any]:
    """The document of sweep ``name`` (its experiments are named ``<name>-*``) over ``models``, by params.yaml
    `tuning`, with the span of wall time its experiments finished over."""
    vaes = [m for m in models if VAE.met_by(registry.REGISTRY[registry.spec_of(params, m).kind])]
    doc = study(outcomes(exp_show, f"{name}-", models), vaes, [m for m in models if m not in vaes], params.tuning)
    return {**doc, "finished": finished_span(exp_show, f"{name}-")}


def best_working(doc: dict, model: str) -> dict | None:
    """The setting of ``model`` in a sweep's document that works by test error with the lowest mean test error (None
    if none works)."""
    rows = [s for s in doc["models"][model]["settings"] if s["works"]["error"]]
    return min(rows, key=lambda s: _mean([v["mse"] for v in s["seeds"].values()])) if rows else None


def _ranking(values: dict[str, float], higher_is_better: bool) -> list[str]:
    return sorted(values, key=lambda m: -values[m] if higher_is_better else values[m])


def full_epochs(doc: dict, name: str, sweep_epochs: int, epochs: int, exp_show: list[dict]) -> dict[str, Any]:
    """Each model's best working setting of sweep ``name`` (``doc``: its reports/<name>.json) as the sweep trained it
    and as its experiment ``full-<name>-<model>`` trained it at the study's ``epochs``; and whether the models'
    ranking by those settings (mean test error; mean kNN accuracy) is the same at both."""
    _, rows = exp_rows(exp_show)
    found = dict(rows[1:])
    per_model = {}
    for model in doc["models"]:
        best = best_working(doc, model)
        exp = f"{FULL_PREFIX}-{name}-{model}"
        if best is None or exp not in found:
            continue
        full = {k: asdict(v) for k, v in _seeds(found[exp], model).items()}
        if full:
            per_model[model] = {"setting": best["key"], "exp": exp, "sweep": best["seeds"], "full": full}
    means = {when: {by: {m: _mean([v[key] for v in e[when].values()]) for m, e in per_model.items()}
                    for by, key in (("error", "mse"), ("latent", "knn"))} for when in ("sweep", "full")}
    ranking = {by: {when: _ranking(means[when][by], by == "latent") for when in ("sweep", "full")}
               for by in ("error", "latent")}
    for by, key in (("error", "mse"), ("latent", "knn")):
        # Whether each two neighbours of the ranking at the study's epochs have 95% intervals over seeds that do not
        # overlap: an order between two models within each other's intervals is not established.
        ci = {m: stats.mean_ci([v[key] for v in e["full"].values()]) for m, e in per_model.items()}
        ranking[by]["apart"] = [ci[a].high < ci[b].low or ci[b].high < ci[a].low
                                for a, b in zip(ranking[by]["full"], ranking[by]["full"][1:])]
    return {"sweep_epochs": sweep_epochs, "epochs": epochs, "models": per_model, "means": means,
            "ranking": {by: {**r, "holds": r["sweep"] == r["full"]} for by, r in ranking.items()},
            "finished": finished_span(exp_show, f"{FULL_PREFIX}-{name}-")}


def document(params: Params, name: str, models: Sequence[str], sweep_epochs: int, exp_show: list[dict],
             earlier: dict | None, best_at_full_epochs: bool) -> dict[str, Any]:
    """reports/<name>.json: the sweep collected from ``exp_show`` (keeping the check of ``earlier``, the file as it
    was: that check's experiments hang off another baseline commit); or, ``best_at_full_epochs``, ``earlier`` with
    the check of its best settings at the study's epochs (:func:`full_epochs`) added."""
    if not best_at_full_epochs:
        return {**collect(params, name, models, exp_show), "full_epochs": (earlier or {}).get("full_epochs")}
    if earlier is None:
        raise ReportError(f"reports/{name}.json: no such file; write the sweep's report before checking its best "
                          "settings at the study's epochs")
    return {**earlier, "full_epochs": full_epochs(earlier, name, sweep_epochs, params.train.epochs, exp_show)}

