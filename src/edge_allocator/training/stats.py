"""Confidence intervals and paired comparisons over seeds (common random numbers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# two-sided 97.5% Student-t quantiles by degrees of freedom
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t975(df: int) -> float:
    if df <= 0:
        return math.nan
    if df in _T975:
        return _T975[df]
    below = [k for k in _T975 if k <= df]
    return _T975[max(below)] if df <= 30 else 1.96


def mean_ci(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (t distribution)."""
    vals = [x for x in xs if not math.isnan(x)]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan
    m = sum(vals) / n
    if n == 1:
        return m, math.nan
    var = sum((x - m) ** 2 for x in vals) / (n - 1)
    return m, t975(n - 1) * math.sqrt(var / n)


def paired_relative(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% CI half-width of ``(a_s - b_s) / b_s`` over paired seeds ``s``."""
    return mean_ci([(x - y) / y for x, y in zip(a, b, strict=True) if y])


def nan_to_none(obj: Any) -> Any:
    """A JSON-safe copy: NaN (a statistic with too few samples) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj
