"""Uncertainty over seeds: each number of the report is a mean ± a Student-t confidence interval.

The study trains every model over a few seeds (3 by default), so a reported number is the mean of n
per-seed values and its uncertainty is the Student-t interval with n − 1 degrees of freedom:

    mean ± t_{(1+level)/2, n−1} · s / √n,      s = the sample standard deviation (n − 1 in the denominator).

scipy is not a dependency, so the t quantile is computed here: the Student-t CDF through the regularised
incomplete beta function (Abramowitz & Stegun 26.7.1; DLMF 8.17 and 8.17.22 for its continued fraction),
inverted by bisection. With one seed the interval is undefined (``low = high = nan``) and must never
decide a verdict (:mod:`vaelab.claims`).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Iterable

LEVEL = 0.95

# t_{0.975, df} for df = 1..30, three decimals, as printed in NIST/SEMATECH e-Handbook of Statistical Methods,
# table 1.3.6.7.2 ("Critical values of the Student's t distribution"). Not used for computing: the tests check
# t_quantile against it.
T975_TABLE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
              2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
              2.045, 2.042)

_CF_EPS = 1e-15        # relative change at which the continued fraction has converged
_CF_TINY = 1e-300      # Lentz's guard against a zero denominator
_CF_MAX_TERMS = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds and its two-sided ``level`` confidence interval [low, high] (nan when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def defined(self) -> bool:
        """Whether there is an interval at all: at least 2 values (one seed has no spread to estimate)."""
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        """The ± part: t · s / √n (nan when the interval is undefined, 0 when every value is the same)."""
        return (self.high - self.low) / 2 if self.defined else math.nan


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for 0 <= x <= 1 and a, b > 0.

    Evaluated by the continued fraction of DLMF 8.17.22 (modified Lentz algorithm), which converges fast for
    x < (a + 1) / (a + b + 2); above that the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) (DLMF 8.17.4) is used.
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"regularized_incomplete_beta: a = {a!r}, b = {b!r}: expected both > 0")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_incomplete_beta: x = {x!r}: expected a number in [0, 1]")
    if x == 0.0 or x == 1.0:
        return x
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_incomplete_beta(1.0 - x, b, a)
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta) / a
    return front / _beta_continued_fraction(x, a, b)


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """K = 1 + d1/(1 + d2/(1 + ...)), so that I_x(a, b) = x^a (1−x)^b / (a B(a, b)) / K (DLMF 8.17.22), with
    d_{2m+1} = −(a+m)(a+b+m) x / ((a+2m)(a+2m+1)) and d_{2m} = m(b−m) x / ((a+2m−1)(a+2m))."""
    value, c, d = 1.0, 1.0, 0.0   # Lentz: value = c·d products of the ratios of successive convergents
    for j in range(1, _CF_MAX_TERMS):
        m = j // 2
        if j % 2:
            coeff = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            coeff = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + coeff * d
        d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
        c = 1.0 + coeff / c
        c = c if abs(c) > _CF_TINY else _CF_TINY
        value *= c * d
        if abs(c * d - 1.0) < _CF_EPS:
            return value
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (x={x}, a={a}, b={b})")


def _check_df(df: float) -> None:
    if isinstance(df, bool) or not (df > 0):
        raise ValueError(f"degrees of freedom = {df!r}: expected a number > 0 (math.inf for the normal limit)")


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (A&S 26.7.1: P(|T| > t) = I_{df/(df+t²)}(df/2, 1/2))."""
    _check_df(df)
    if math.isinf(df):
        return statistics.NormalDist().cdf(-t)
    two_sided = regularized_incomplete_beta(df / (df + t * t), df / 2, 0.5)  # t*t may overflow to inf: x = 0
    return two_sided / 2 if t >= 0 else 1.0 - two_sided / 2


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    return 1.0 - t_upper_tail(t, df)


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p for Student's t with ``df`` degrees of freedom (math.inf: the normal quantile).

    Bisection on the upper tail (accurate for p near 1), to a relative precision of about 1e-13; the
    distribution is symmetric, so t_{1−p} = −t_p.
    """
    _check_df(df)
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p = {p!r}: expected a probability in (0, 1)")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p
    lo, hi = 0.0, 1.0
    while t_upper_tail(hi, df) > tail:   # the tail falls as t grows: double until it brackets the quantile
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_upper_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2


def t_quantile_975(df: float) -> float:
    """t_{0.975, df}: the multiplier of a two-sided 95% interval."""
    return t_quantile(0.975, df)


def _as_floats(values: Iterable[float], what: str) -> list[float]:
    out = []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{i}] = {v!r}: expected a number") from None
        if isinstance(v, bool) or not math.isfinite(f):
            raise ValueError(f"{what}[{i}] = {v!r}: expected a finite number")
        out.append(f)
    return out


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean of per-seed ``values`` and its two-sided Student-t interval at ``level`` (n − 1 degrees of freedom).

    One value: ``low = high = nan`` (no spread to estimate). Identical values: ``low = high = mean``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"mean_ci: level = {level!r}: expected a probability in (0, 1), e.g. 0.95")
    xs = _as_floats(values, "values")
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci: no values (expected one per seed)")
    # statistics works in exact fractions: identical values give exactly their value and a spread of exactly 0.
    mean = statistics.mean(xs)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, level)
    half = t_quantile((1.0 + level) / 2, n - 1) * statistics.stdev(xs, mean) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def paired_differences(a: Iterable[float], b: Iterable[float]) -> list[float]:
    """Per-seed differences a_s − b_s of two models trained over the same seeds, in the same order."""
    xs, ys = _as_floats(a, "a"), _as_floats(b, "b")
    if len(xs) != len(ys):
        raise ValueError(f"paired_differences: {len(xs)} values against {len(ys)}: expected one per seed on each side")
    return [x - y for x, y in zip(xs, ys)]


def _decimals(x: float, significant: int) -> int:
    """Decimal places that show ``x`` to ``significant`` significant digits (fixed-point notation)."""
    return significant - 1 - math.floor(math.log10(abs(x))) if x != 0 else significant - 1


def format_interval(iv: Interval, digits: int = 4) -> str:
    """``"0.7901 ± 0.012"``: the mean to at least ``digits`` significant digits and at least the half-width's
    precision, the half-width to 2 significant digits. One seed: ``"0.7901 (1 seed)"``."""
    if digits < 1:
        raise ValueError(f"format_interval: digits = {digits!r}: expected >= 1")
    if not iv.defined:
        return f"{iv.mean:.{digits}g} ({iv.n} seed{'s' if iv.n != 1 else ''})"
    half = float(f"{iv.half_width:.2g}")   # rounded first: 0.0996 shows as 0.10, not 0.100
    half_decimals = max(0, _decimals(half, 2)) if half > 0 else 0
    decimals = max(0, half_decimals, _decimals(iv.mean, digits))
    if decimals > 12 or abs(iv.mean) >= 1e12:   # fixed-point would be unreadable: scientific notation instead
        return f"{iv.mean:.{digits}g} ± {half:.2g}"
    return f"{iv.mean:.{decimals}f} ± {half:.{half_decimals}f}"
