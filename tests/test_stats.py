"""Student-t quantiles without scipy, mean ± interval over seeds, paired differences and their formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaelab import stats
from vaelab.stats import Interval, format_interval, mean_ci, paired_differences, t_quantile


@pytest.mark.parametrize("df", range(1, 31))
def test_t_975_matches_the_printed_table(df: int) -> None:
    # NIST/SEMATECH e-Handbook table 1.3.6.7.2 prints three decimals: agree to rounding.
    assert abs(t_quantile(0.975, df) - stats.T975_TABLE[df - 1]) <= 0.0005 + 1e-12


@pytest.mark.parametrize(("p", "df", "expected"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776),
    (0.995, 5, 4.032), (0.95, 10, 1.812), (0.90, 3, 1.638), (0.999, 20, 3.552),
])
def test_known_quantiles(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-4)


def test_closed_forms_for_one_and_two_degrees_of_freedom() -> None:
    # df = 1 is the Cauchy distribution: t_p = tan(π (p − 1/2)); df = 2: t_p = (2p − 1) / sqrt(2 p (1 − p)).
    for p in (0.6, 0.9, 0.975, 0.995, 0.9999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-11)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-11)


def test_large_df_tends_to_the_normal_quantile() -> None:
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.975, 10**6) == pytest.approx(1.959964, abs=1e-5)
    qs = [t_quantile(0.975, df) for df in (1, 2, 5, 30, 100, 1000)]
    assert all(a > b for a, b in zip(qs, qs[1:])) and qs[-1] > 1.959964


def test_quantile_inverts_the_cdf_and_is_symmetric() -> None:
    for df in (1, 2.5, 7, 60):
        for p in (0.01, 0.3, 0.5, 0.8, 0.999):
            assert stats.t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)
            assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df), rel=1e-12, abs=1e-12)


def test_incomplete_beta_closed_forms() -> None:
    f = stats.regularized_incomplete_beta
    for x in (0.0, 0.05, 0.3, 0.62, 0.97, 1.0):
        assert f(x, 1, 1) == pytest.approx(x, abs=1e-14)
        assert f(x, 2.5, 1) == pytest.approx(x**2.5, abs=1e-14)              # I_x(a, 1) = x^a
        assert f(x, 1, 3.5) == pytest.approx(1 - (1 - x) ** 3.5, abs=1e-14)  # I_x(1, b) = 1 − (1 − x)^b
        assert f(x, 4, 0.5) + f(1 - x, 0.5, 4) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: t_quantile(1.0, 3), "p = 1.0"), (lambda: t_quantile(0.975, 0), "degrees of freedom = 0"),
    (lambda: stats.regularized_incomplete_beta(1.5, 1, 1), "x = 1.5"),
    (lambda: mean_ci([]), "no values"), (lambda: mean_ci([1.0, math.nan]), r"values\[1\] = nan"),
    (lambda: mean_ci([1.0, 2.0], level=95), "level = 95"),
])
def test_bad_input_is_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_mean_ci_by_hand() -> None:
    # [1, 2, 3]: mean 2, s = 1, half-width t_{0.975,2} / sqrt(3) = 4.302653 / 1.732051 = 2.484138.
    iv = mean_ci([1.0, 2.0, 3.0])
    assert (iv.mean, iv.n) == (2.0, 3) and iv.defined
    assert iv.half_width == pytest.approx(2.484138, abs=1e-6)
    assert iv.low == pytest.approx(2 - 2.484138, abs=1e-6) and iv.high == pytest.approx(2 + 2.484138, abs=1e-6)
    assert mean_ci([1.0, 2.0, 3.0], level=0.99).half_width > iv.half_width > mean_ci([1.0, 2.0, 3.0], 0.8).half_width


def test_one_seed_has_no_interval_and_identical_values_have_zero_width() -> None:
    one = mean_ci([0.79])
    assert one.mean == 0.79 and one.n == 1 and not one.defined
    assert math.isnan(one.low) and math.isnan(one.high) and math.isnan(one.half_width)
    same = mean_ci([0.1, 0.1, 0.1])   # 0.1 is not exact in binary: the mean must still be exactly it
    assert same.defined and same.low == same.mean == same.high == 0.1 and same.half_width == 0.0


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    draws = rng.normal(loc=3.0, scale=2.0, size=(4000, 3))
    ivs = [mean_ci(row) for row in draws]
    assert all(iv.low <= iv.mean <= iv.high for iv in ivs)
    coverage = np.mean([iv.low <= 3.0 <= iv.high for iv in ivs])
    assert 0.935 <= coverage <= 0.965   # binomial sd at n = 4000 is 0.0034
    # With the normal's 1.96 instead of t_{0.975,2} they would cover only P(|T_2| <= 1.96) = 1.96 / sqrt(2 + 1.96²)
    # = 81%: the t multiplier is what makes 3 seeds honest.
    normal = np.mean([abs(iv.mean - 3.0) <= 1.96 * iv.half_width / t_quantile(0.975, 2) for iv in ivs])
    assert normal == pytest.approx(1.96 / math.sqrt(2 + 1.96**2), abs=0.02) and normal < 0.85


def test_paired_differences() -> None:
    assert paired_differences([3.0, 5.0, 1.5], [1.0, 6.0, 1.5]) == [2.0, -1.0, 0.0]
    with pytest.raises(ValueError, match="3 values against 2"):
        paired_differences([1.0, 2.0, 3.0], [1.0, 2.0])


def test_format_interval() -> None:
    assert format_interval(Interval(0.7901, 0.7781, 0.8021, 3), 3) == "0.790 ± 0.012"
    assert format_interval(mean_ci([141.2, 141.9, 140.8])) == "141.3 ± 1.4"
    assert format_interval(Interval(0.7912, 0.4812, 1.1012, 2)) == "0.7912 ± 0.31"   # digits kept for the mean
    assert format_interval(Interval(2.0, 1.9004, 2.0996, 3)) == "2.000 ± 0.10"        # 0.0996 rounds up to 0.10
    assert format_interval(mean_ci([0.1, 0.1])) == "0.1000 ± 0"
    assert format_interval(mean_ci([0.79])) == "0.79 (1 seed)"
    for values in ([1e-5, 1.2e-5, 1.1e-5], [-3.25, -3.5], [12345.6, 12400.1]):
        iv = mean_ci(values)
        mean, half = (float(s) for s in format_interval(iv).split(" ± "))
        assert mean == pytest.approx(iv.mean, rel=1e-3) and half == pytest.approx(iv.half_width, rel=0.05)
