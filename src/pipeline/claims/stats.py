"""The statistics every claim uses: the 95% Student-t interval of per-seed paired
differences, and when such an interval says nothing."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .text import fmt


def paired_interval(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed paired differences `diffs`: mean ± t_{(1+level)/2, n-1} · sd/√n.
    For n < 2 the interval is (nan, nan); for n = 0 the mean is nan too."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if d.size < 2:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + level) / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return (mean, mean - half, mean + half)


def interval_problem(diffs) -> str:
    """Why paired differences `diffs` give no usable interval ("" when they do): fewer than 2,
    or all equal (a zero-width interval that says nothing about the spread over seeds)."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return f"only {d.size} seed(s) pair, too few for an interval"
    if float(d.std(ddof=1)) == 0.0:
        return f"the {d.size} paired differences are identical ({fmt(d[0])}), so the interval has zero width"
    return ""
