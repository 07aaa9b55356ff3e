"""Mean ± Student-t interval over seeds (t quantiles from scipy), paired differences and their formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaelab.core.stats import Interval, format_interval, mean_ci, paired_differences, t_quantile

# t_{0.975, df} for df = 1..30, three decimals, as printed in NIST/SEMATECH e-Handbook of Statistical Methods,
# table 1.3.6.7.2 ("Critical values of the Student's t distribution"): an independent check of the interval's
# multiplier, whichever library computes it.
T975_TABLE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
              2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
              2.045, 2.042)


@pytest.mark.parametrize("df", range(1, 31))
def test_t_975_matches_the_printed_table(df: int) -> None:
    # The table prints three decimals: agree to rounding.
    assert abs(t_quantile(0.975, df) - T975_TABLE[df - 1]) <= 0.0005 + 1e-12


def test_interval_uses_the_t_multiplier_of_its_level() -> None:
    xs = [1.0, 2.0, 4.0]
    s = float(np.std(xs, ddof=1))
    for level, printed in ((0.95, 4.303), (0.90, 2.920), (0.99, 9.925)):
        assert mean_ci(xs, level).half_width == pytest.approx(printed * s / math.sqrt(3), rel=5e-4)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: t_quantile(1.0, 3), "p = 1.0"), (lambda: t_quantile(0.975, 0), "degrees of freedom = 0"),
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
