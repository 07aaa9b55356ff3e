"""The post's claims get verdicts by the stated rule; the tuning claim's numbers."""

from __future__ import annotations

import json
import math

import pytest

from vaelab import claims
from vaelab.claims import ClaimSpec, claims_table, judge, seed_spread, tuning_fraction
from vaelab.errors import ReportError

KNN = ClaimSpec("The VAE's latent space is better ordered than the AE's", "latent.knn_accuracy", "higher",
                "vae_bce", "ae")
MSE = ClaimSpec("BCE gives sharper digits than MSE", "reconstruction.mse_per_image", "lower", "vae_bce", "vae_mse")


def runs(key: str, values: list[float]) -> list[dict]:
    """Nested per-seed metric dicts, e.g. runs("latent.knn_accuracy", [...]) -> [{"latent": {"knn_accuracy": v}}]."""
    group, name = key.split(".")
    return [{group: {name: v, "other": 0.0}} for v in values]


def test_clearly_positive_negative_and_mixed_differences() -> None:
    ae = runs("latent.knn_accuracy", [0.60, 0.62, 0.61])
    better = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.80, 0.81, 0.79]), "ae": ae})
    assert better.verdict == "supported" and better.interval.low > 0
    assert better.differences == pytest.approx((0.20, 0.19, 0.18))
    worse = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.50, 0.52, 0.49]), "ae": ae})
    assert worse.verdict == "contradicted" and worse.interval.high < 0
    mixed = judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.70, 0.55, 0.62]), "ae": ae})
    assert mixed.verdict == "inconclusive" and mixed.interval.low < 0 < mixed.interval.high


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
    assert tie.verdict == "inconclusive"


def test_lower_is_better_flips_the_sign() -> None:
    bce = runs("reconstruction.mse_per_image", [30.0, 31.0, 29.5])
    mse = runs("reconstruction.mse_per_image", [35.0, 36.0, 35.5])
    v = judge(MSE, {"vae_bce": bce, "vae_mse": mse})
    assert v.differences == pytest.approx((5.0, 5.0, 6.0)) and v.verdict == "supported"
    assert v.model_values == (30.0, 31.0, 29.5)          # the raw metric is kept unoriented
    flipped = ClaimSpec(MSE.claim, MSE.metric, "higher", MSE.model, MSE.baseline)
    assert judge(flipped, {"vae_bce": bce, "vae_mse": mse}).verdict == "contradicted"


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
        judge(ClaimSpec("x", KNN.metric, "more", "vae_bce", "ae"), {"vae_bce": good, "ae": good})  # type: ignore[arg-type]


def test_claims_table_is_json_and_follows_the_rule() -> None:
    ae = runs("latent.knn_accuracy", [0.60, 0.62, 0.61])
    verdicts = [judge(KNN, {"vae_bce": runs("latent.knn_accuracy", v), "ae": ae})
                for v in ([0.80, 0.81, 0.79], [0.50, 0.52, 0.49], [0.70, 0.55, 0.62])]
    verdicts.append(judge(KNN, {"vae_bce": runs("latent.knn_accuracy", [0.9]), "ae": ae[:1]}))
    rows = json.loads(json.dumps(claims_table(verdicts), allow_nan=False))   # strict JSON: no NaN
    assert [r["verdict"] for r in rows] == ["supported", "contradicted", "inconclusive", "inconclusive"]
    assert rows[3]["ci95_low"] is None and rows[3]["ci95_high"] is None and rows[3]["n_seeds"] == 1
    for row in rows[:3]:
        low, high = row["ci95_low"], row["ci95_high"]
        assert row["verdict"] == ("supported" if low > 0 else "contradicted" if high < 0 else "inconclusive")
        assert row["mean_difference"] == pytest.approx(sum(row["differences"]) / 3)
        assert set(row) >= {"claim", "metric", "better", "model", "baseline", "model_values", "baseline_values"}
    assert all(v in claims.RULE for v in claims.VERDICTS) and "fewer than 2 seeds" in claims.RULE


def test_tuning_fraction_by_hand() -> None:
    # best 10.0, bound 10 · 1.1 = 11.0: settings at 10.0, 10.5 and 11.0 count, 11.5 and 20.0 do not.
    errors = {(1e-3, 128): 10.0, (3e-4, 128): 10.5, (1e-4, 64): 11.0, (3e-3, 256): 11.5, (1e-2, 32): 20.0}
    assert tuning_fraction(errors, 0.10) == pytest.approx(3 / 5)
    assert tuning_fraction(list(errors.values()), 0.0) == pytest.approx(1 / 5)
    assert tuning_fraction(errors, 1.0) == 1.0
    with pytest.raises(ValueError, match="margin = -0.1"):
        tuning_fraction(errors, -0.1)
    with pytest.raises(ValueError, match="no settings"):
        tuning_fraction({}, 0.1)
    with pytest.raises(ValueError, match="error -1.0"):
        tuning_fraction([3.0, -1.0], 0.1)


def test_seed_spread_is_the_coefficient_of_variation() -> None:
    # [9, 10, 11]: mean 10, sample sd 1 -> 0.1; scaling every value leaves it unchanged.
    assert seed_spread([9.0, 10.0, 11.0]) == pytest.approx(0.1)
    assert seed_spread([90.0, 100.0, 110.0]) == pytest.approx(0.1)
    assert seed_spread([4.0, 4.0, 4.0]) == 0.0
    assert math.isnan(seed_spread([4.0])) and math.isnan(seed_spread([-1.0, 1.0]))
