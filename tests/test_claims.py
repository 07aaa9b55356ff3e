"""The post's claims get verdicts by the stated rule (recomputed here by scipy); the tuning claim's numbers."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from vaelab.core.errors import ReportError
from vaelab.studies import claims
from vaelab.studies.claims import ClaimSpec, alternatives, claims_table, judge, judge_all, seed_spread

KNN = ClaimSpec("The VAE's latent space is better ordered than the AE's", "latent.knn_accuracy", "higher",
                "vae_bce", "ae", margin=0.01)
MSE = ClaimSpec("BCE gives sharper digits than MSE", "reconstruction.mse_per_image", "lower", "vae_bce", "vae_mse",
                margin=0.5)


def runs(key: str, values: list[float], se: float | None = None) -> list[dict]:
    """Nested per-seed metric dicts, e.g. runs("latent.knn_accuracy", [...]) -> [{"latent": {"knn_accuracy": v}}]."""
    group, name = key.split(".")
    extra = {} if se is None else {f"{name}_se": se}
    return [{group: {name: v, "other": 0.0, **extra}} for v in values]


def by_seed(values: list[dict], seeds: list[int] | None = None) -> dict[int, dict]:
    return dict(zip(seeds or range(len(values)), values))


def recomputed_verdicts(rows: list[dict], alpha: float = 0.05) -> list[str]:
    """The verdicts of a claims.json table, recomputed from its per-seed differences: the t-tests by scipy
    (``ttest_1samp`` where no image-level error enters), Holm's step-down by its definition, TOST as two one-sided
    tests against ± the margin."""
    ps, tosts, tested = [], [], [i for i, r in enumerate(rows) if r["n_seeds"] >= 2]
    for i in tested:
        r = rows[i]
        d, margin = np.array(r["differences"]), r["margin"]
        n = len(d)
        if r["model_image_se"] == 0 and r["baseline_image_se"] == 0 and d.std() > 0:
            ps.append(sps.ttest_1samp(d, 0.0).pvalue)
            tosts.append(max(sps.ttest_1samp(d, -margin, alternative="greater").pvalue,
                             sps.ttest_1samp(d, margin, alternative="less").pvalue))
        else:
            se = math.sqrt(d.var(ddof=1) / n + r["model_image_se"] ** 2 + r["baseline_image_se"] ** 2)
            t = d.mean() / se
            ps.append(2 * sps.t.sf(abs(t), n - 1))
            tosts.append(max(sps.t.sf((d.mean() + margin) / se, n - 1), sps.t.sf((margin - d.mean()) / se, n - 1)))

    def holm(p: list[float]) -> list[float]:
        m, order = len(p), np.argsort(p, kind="stable")
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate([min(1.0, (m - j) * p[i]) for j, i in enumerate(order)])
        return list(adjusted)

    out = ["inconclusive"] * len(rows)
    for i, p, tost in zip(tested, holm(ps), holm(tosts)):
        mean = rows[i]["mean_difference"]
        out[i] = (("real but negligible" if abs(mean) < rows[i]["margin"] else "supported" if mean > 0
                   else "contradicted") if p < alpha and mean != 0 else "equivalent" if tost < alpha else "inconclusive")
    return out


def test_clearly_positive_negative_and_mixed_differences() -> None:
    ae = runs("latent.knn_accuracy", [0.60, 0.62, 0.61])
    better = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.80, 0.81, 0.79]), "ae": ae})
    assert better.verdict == "supported" and better.interval.low > 0
    assert better.differences == pytest.approx((0.20, 0.19, 0.18))
    worse = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.50, 0.52, 0.49]), "ae": ae})
    assert worse.verdict == "contradicted" and worse.interval.high < 0
    mixed = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.70, 0.55, 0.62]), "ae": ae})
    assert mixed.verdict == "inconclusive" and mixed.interval.low < 0 < mixed.interval.high


def test_a_small_tight_difference_is_equivalent_and_a_noisy_one_inconclusive() -> None:
    ae = runs("latent.knn_accuracy", [0.600, 0.620, 0.610, 0.605, 0.615])
    tight = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.601, 0.619, 0.612, 0.604, 0.616]), "ae": ae})
    assert tight.verdict == "equivalent" and -KNN.margin < tight.interval.low < tight.interval.high < KNN.margin
    noisy = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.63, 0.58, 0.64, 0.57, 0.62]), "ae": ae})
    assert noisy.verdict == "inconclusive" and noisy.interval.high > KNN.margin


def test_all_positive_but_noisy_differences_stay_inconclusive() -> None:
    # Every seed favours the claim, yet with 3 seeds the t-interval (t = 4.30) still reaches below 0.
    v = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.61, 0.72, 0.62]),
                    "ae": runs("latent.knn_accuracy", [0.60, 0.60, 0.60])})
    assert all(d > 0 for d in v.differences) and v.verdict == "inconclusive"


def test_one_seed_is_never_a_verdict() -> None:
    v = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.99]), "ae": runs("latent.knn_accuracy", [0.10])})
    assert v.verdict == "inconclusive" and not v.interval.defined and v.differences == pytest.approx((0.89,))


def test_identical_differences_give_a_point_interval() -> None:
    v = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.8, 0.8]), "ae": runs("latent.knn_accuracy", [0.5] * 2)})
    assert v.interval.low == v.interval.high and v.verdict == "supported"
    tie = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.5] * 2), "ae": runs("latent.knn_accuracy", [0.5] * 2)})
    assert tie.verdict == "equivalent"     # exactly no difference, with no spread: inside any margin


def test_a_real_effect_inside_the_margin_is_real_but_negligible() -> None:
    # Every seed shows +0.005 give or take 0.0005: the interval excludes 0, yet the effect is half the margin.
    ae = runs(KNN.metric, [0.600, 0.610, 0.620, 0.630, 0.640])
    small = judge(KNN, {"vae_bce": runs(KNN.metric, [0.6050, 0.6154, 0.6246, 0.6352, 0.6448]), "ae": ae})
    assert small.interval.low > 0 and small.interval.mean < KNN.margin
    assert small.verdict == claims.NEGLIGIBLE
    large = judge(KNN, {"vae_bce": runs(KNN.metric, [0.650, 0.661, 0.669, 0.681, 0.690]), "ae": ae})
    assert large.verdict == "supported"


def test_a_metric_undefined_for_a_model_makes_the_claim_not_applicable() -> None:
    # A collapsed model's images do not move: its jump ratio is null, and the claim leaves the family.
    jump = ClaimSpec("continuous", "continuity.jump_ratio", "lower", "vae_bce", "ae", margin=0.05)
    evals = {"vae_bce": by_seed(runs(jump.metric, [1.5, 1.6, 1.4])), "ae": by_seed(runs(jump.metric, [None] * 3)),
             "ae2": by_seed(runs(KNN.metric, [0.5, 0.6, 0.55]))}
    family = judge_all([jump, replace(KNN, baseline="ae2")], {**evals, "vae_bce": {
        s: {**m, **r} for (s, m), r in zip(evals["vae_bce"].items(), runs(KNN.metric, [0.8, 0.81, 0.79]))}})
    assert family[0].verdict == claims.NOT_APPLICABLE and family[0].interval.n == 0
    assert family[1].interval.level == pytest.approx(0.95)     # a family of one: the other claim is not counted
    assert json.loads(json.dumps(claims_table(family), allow_nan=False))[0]["verdict"] == "not applicable"


def test_robustness_judges_each_variant_and_says_whether_the_verdict_holds() -> None:
    spec = ClaimSpec("continuous", "continuity.real_share", "higher", "vae_bce", "ae", margin=0.05,
                     variants=["continuity.real_share_q90", "continuity.real_share_q99"])
    def seeds(main: list[float], q90: list[float], q99: list[float]) -> dict[int, dict]:
        return by_seed([{"continuity": {"real_share": a, "real_share_q90": b, "real_share_q99": c}}
                        for a, b, c in zip(main, q90, q99)])
    evals = {"vae_bce": seeds([0.60, 0.62, 0.61, 0.63], [0.50, 0.52, 0.51, 0.53], [0.90, 0.91, 0.89, 0.92]),
             "ae": seeds([0.40, 0.41, 0.39, 0.42], [0.30, 0.31, 0.29, 0.32], [0.90, 0.90, 0.91, 0.91])}
    robust = claims.robustness(spec, evals)
    assert list(robust) == [spec.metric, *spec.variants]
    assert [v.verdict for v in robust.values()] == ["supported", "supported", "equivalent"]
    assert not claims.holds_across(robust)
    assert claims.holds_across({k: robust[k] for k in list(robust)[:2]})
    row = claims_table(judge_all([spec], evals), robust=[robust])[0]
    assert row["holds_across_settings"] is False and row["robustness"]["continuity.real_share_q99"]["verdict"] == "equivalent"


def test_lower_is_better_flips_the_sign() -> None:
    bce = runs("reconstruction.mse_per_image", [30.0, 31.0, 29.5])
    mse = runs("reconstruction.mse_per_image", [35.0, 36.0, 35.5])
    v = judge(MSE, {"vae_bce": bce, "vae_mse": mse})
    assert v.differences == pytest.approx((5.0, 5.0, 6.0)) and v.verdict == "supported"
    assert v.model_values == (30.0, 31.0, 29.5)          # the raw metric is kept unoriented
    flipped = ClaimSpec(MSE.claim, MSE.metric, "higher", MSE.model, MSE.baseline, margin=MSE.margin)
    assert judge(flipped, {"vae_bce": bce, "vae_mse": mse}).verdict == "contradicted"


def test_image_level_errors_widen_the_interval() -> None:
    ae, bce = [0.60, 0.62, 0.61, 0.63], [0.64, 0.655, 0.65, 0.668]
    plain = judge(KNN, {"vae_bce": runs(KNN.metric, bce), "ae": runs(KNN.metric, ae)})
    noisy = judge(KNN, {"vae_bce": runs(KNN.metric, bce, se=0.02), "ae": runs(KNN.metric, ae, se=0.02)})
    assert plain.verdict == "supported" and noisy.verdict == "inconclusive"
    assert noisy.interval.half_width > plain.interval.half_width
    assert noisy.se == pytest.approx(math.sqrt(plain.se ** 2 + 2 * 0.02 ** 2))


def test_holm_corrects_the_family_and_pairs_on_shared_seeds() -> None:
    # vae_bce has ten seeds, ae three of them: the claim pairs on the three both have.
    seeds10 = list(range(42, 52))
    bce = by_seed(runs(KNN.metric, [0.70 + 0.001 * i for i in range(10)]), seeds10)
    ae = by_seed(runs(KNN.metric, [0.60, 0.59, 0.615]), [44, 42, 50])
    evals = {"vae_bce": bce, "ae": ae, "vae_mse": by_seed(runs(KNN.metric, [0.61, 0.70, 0.55]), [42, 44, 50])}
    weak = ClaimSpec("weak", KNN.metric, "higher", "vae_mse", "ae", margin=0.01)
    verdicts = judge_all([KNN, weak], evals)
    assert verdicts[0].seeds == (42, 44, 50) and verdicts[0].interval.n == 3
    assert verdicts[0].differences == pytest.approx((0.70 - 0.59, 0.702 - 0.60, 0.708 - 0.615))
    alone = judge(KNN, {"vae_bce": [bce[s] for s in (42, 44, 50)], "ae": [ae[s] for s in (42, 44, 50)]})
    assert verdicts[0].p_holm == pytest.approx(2 * alone.p_value)   # ranked first of two: Bonferroni's factor
    assert verdicts[0].interval.level == pytest.approx(1 - 0.05 / 2)
    assert verdicts[1].interval.level == pytest.approx(0.95)         # the second step of two
    assert verdicts[0].interval.half_width > alone.interval.half_width
    rows = claims_table(verdicts)
    assert recomputed_verdicts(rows) == [v.verdict for v in verdicts]


def test_recomputed_by_scipy_on_many_random_families() -> None:
    gen = np.random.default_rng(0)
    for _ in range(20):
        specs, evals = [], {"base": by_seed(runs(KNN.metric, list(gen.normal(0.5, 0.01, 6))))}
        for j in range(5):
            name = f"m{j}"
            shift = gen.choice([0.0, 0.002, 0.03, -0.03])
            evals[name] = by_seed(runs(KNN.metric, list(gen.normal(0.5 + shift, 0.01, 6)),
                                       se=float(gen.choice([0.0, 0.003]))))
            specs.append(ClaimSpec(name, KNN.metric, "higher", name, "base", margin=0.01))
        evals["base"] = {s: {"latent": {**m["latent"], "knn_accuracy_se": 0.0}} for s, m in evals["base"].items()}
        rows = json.loads(json.dumps(claims_table(judge_all(specs, evals)), allow_nan=False))
        assert recomputed_verdicts(rows) == [r["verdict"] for r in rows]
        assert {r["verdict"] for r in rows} <= set(claims.VERDICTS)


def test_forking_paths_put_every_other_model_in_either_role() -> None:
    evals = {"vae_bce": by_seed(runs(KNN.metric, [0.8, 0.81, 0.79])), "ae": by_seed(runs(KNN.metric, [0.6, 0.62, 0.61])),
             "vae_mse": by_seed(runs(KNN.metric, [0.7, 0.69, 0.71])), "other": by_seed([{"latent": {"silhouette": 0.1}}] * 3)}
    as_model = alternatives(KNN, evals, "model")
    as_baseline = alternatives(KNN, evals, "baseline")
    assert set(as_model) == {"vae_mse"} == set(as_baseline)          # "other" lacks the metric
    assert as_model["vae_mse"].spec.model == "vae_mse" and as_model["vae_mse"].spec.baseline == "ae"
    assert as_baseline["vae_mse"].spec.baseline == "vae_mse" and as_baseline["vae_mse"].verdict == "supported"
    row = claims_table(judge_all([KNN], evals), [{"model": as_model, "baseline": as_baseline}])[0]
    assert row["alternatives"]["baseline"]["vae_mse"]["verdict"] == "supported"


def test_errors_name_the_claim_model_and_key() -> None:
    good = runs("latent.knn_accuracy", [0.8, 0.8])
    with pytest.raises(ReportError, match=r"claim \"The VAE's latent.*baseline 'ae'.*\['vae_bce'\]"):
        judge(KNN, {"vae_bce": good})
    other = [{"latent": {"silhouette": 0.3}}, {"latent": {"knn_accuracy": 0.7}}]
    with pytest.raises(ReportError, match=r"metric 'latent.knn_accuracy' missing for model 'vae_bce' \(seed #0\)"
                                          r".*latent.silhouette"):
        judge(KNN, {"vae_bce": other, "ae": good})
    with pytest.raises(ReportError, match=r"2 seeds for model 'vae_bce' but 3 for baseline 'ae'"):
        judge(KNN, {"vae_bce": good, "ae": runs("latent.knn_accuracy", [0.5, 0.5, 0.5])})
    with pytest.raises(ReportError, match=r"model 'vae_bce' latent.knn_accuracy = nan \(seed #1\)"):
        judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.8, math.nan]), "ae": good})
    with pytest.raises(ReportError, match="better = 'more'"):
        judge(ClaimSpec("x", KNN.metric, "more", "vae_bce", "ae", margin=0.1), {"vae_bce": good, "ae": good})  # type: ignore[arg-type]


def test_claims_table_is_strict_json_with_every_field() -> None:
    ae = by_seed(runs("latent.knn_accuracy", [0.60, 0.62, 0.61]))
    evals = {"vae_bce": by_seed(runs("latent.knn_accuracy", [0.80, 0.81, 0.79])), "ae": ae,
             "one": by_seed(runs("latent.knn_accuracy", [0.9]))}
    specs = [KNN, ClaimSpec("one seed", KNN.metric, "higher", "one", "ae", margin=0.01)]
    rows = json.loads(json.dumps(claims_table(judge_all(specs, evals)), allow_nan=False))   # strict JSON: no NaN
    assert [r["verdict"] for r in rows] == ["supported", "inconclusive"]
    assert rows[1]["ci_low"] is None and rows[1]["p_holm"] is None and rows[1]["n_seeds"] == 1
    assert rows[0]["mean_difference"] == pytest.approx(sum(rows[0]["differences"]) / 3)
    assert set(rows[0]) >= {"claim", "metric", "why", "better", "model", "baseline", "margin", "seeds", "p_value",
                            "p_holm", "tost_p", "tost_p_holm", "level", "ci_low", "ci_high", "verdict"}
    assert all(v in claims.RULE for v in claims.VERDICTS) and "fewer than 2 shared seeds" in claims.RULE


def test_seed_spread_is_the_coefficient_of_variation() -> None:
    # [9, 10, 11]: mean 10, sample sd 1 -> 0.1; scaling every value leaves it unchanged.
    assert seed_spread([9.0, 10.0, 11.0]) == pytest.approx(0.1)
    assert seed_spread([90.0, 100.0, 110.0]) == pytest.approx(0.1)
    assert seed_spread([4.0, 4.0, 4.0]) == 0.0
    assert math.isnan(seed_spread([4.0])) and math.isnan(seed_spread([-1.0, 1.0]))
