"""Uncertainty over seeds: mean ± 95% confidence interval by Student's t (no scipy: a quantile table).

(Lead's minimal version; the stats helper's fuller module replaces it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# t_{0.975, df} for df = 1..30 (any statistics table, e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_quantile_975(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.960


def mean_ci(values: Sequence[float]) -> Interval:
    """Mean and 95% Student-t interval; with one value the interval is undefined (nan)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def format_interval(iv: Interval, digits: int = 4) -> str:
    if iv.n < 2 or math.isnan(iv.low):
        return f"{iv.mean:.{digits}g} (1 seed)"
    return f"{iv.mean:.{digits}g} ± {iv.half_width:.2g}"
