"""Uncertainty over seeds: each number of the report is a mean ± a Student-t confidence interval.

The study trains every model over a few seeds (3 by default), so a reported number is the mean of n
per-seed values and its uncertainty is the Student-t interval with n − 1 degrees of freedom:

    mean ± t_{(1+level)/2, n−1} · s / √n,      s = the sample standard deviation (n − 1 in the denominator).

The t quantile is scipy's (``scipy.stats.t.ppf``). With one seed the interval is undefined
(``low = high = nan``) and must never decide a verdict (:mod:`vaelab.studies.claims`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

LEVEL = 0.95


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


def t_quantile(p: float, df: float) -> float:
    """The Student-t quantile t_{p, df} (scipy): the ``t`` with P(T <= t) = p for df degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p = {p!r}: expected a probability in (0, 1)")
    if not df > 0:
        raise ValueError(f"t_quantile: degrees of freedom = {df!r}: expected > 0")
    from scipy import stats as scipy_stats  # here: importing scipy costs every stage that imports stats

    return float(scipy_stats.t.ppf(p, df))


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


def across_seeds(per_seed: list[dict[str, float]], level: float = LEVEL) -> dict[str, Interval]:
    """For every key of the per-seed dicts, its mean over seeds and interval (:func:`mean_ci`)."""
    return {key: mean_ci([m[key] for m in per_seed], level) for key in per_seed[0]}


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
