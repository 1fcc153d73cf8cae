"""How numbers and names are written in the summary: 4 significant digits with a true minus
sign, intervals, markdown tables, and models and datasets by their display names
(src/pipeline/plotstyle.py, the names the figures use)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline import plotstyle

MINUS = "\u2212"


def fmt(x) -> str:
    """4 significant digits, a true minus sign, "n/a" for a missing number."""
    if x is None or pd.isna(x):
        return "n/a"
    if x == 0:
        return "0"
    text = f"{float(x):#.4g}"
    return (text[:-1] if text.endswith(".") else text).replace("-", MINUS)


def fmt_param(x) -> str:
    """A setting (margin, threshold) as written, not rounded to 4 digits."""
    return f"{x:g}".replace("-", MINUS)


def fmt_interval(mean, low, high) -> str:
    """ "−0.01230 [−0.01500, −0.009600]"; "1.000 [n/a]" where there is no interval."""
    bounds = "n/a" if pd.isna(low) else f"{fmt(low)}, {fmt(high)}"
    return f"{fmt(mean)} [{bounds}]"


def mean_std(values) -> str:
    """ "mean ± std" of `values` (std n/a for one value, 0 where it is rounding noise)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return "n/a"
    sd = v.std(ddof=1) if v.size > 1 else math.nan
    return f"{fmt(v.mean())} ± {fmt(0.0 if sd <= 1e-12 * abs(v.mean()) else sd)}"


def pct(x: float) -> str:
    """A fraction as a percentage, "∞" for an infinite one."""
    return "∞" if math.isinf(x) else f"{fmt(100 * x)}%"


def count(x) -> str:
    """A whole number, "n/a" when missing."""
    return "n/a" if pd.isna(x) else f"{x:.0f}"


def steps_text(steps) -> str:
    """A solver's step count, "adaptive" where it has none (AMD)."""
    return "adaptive" if pd.isna(steps) else count(steps)


def name(model) -> str:
    """A model's display name: "GFE-amd" for "gfe_amd"."""
    return plotstyle.display_name(str(model))


def names(models) -> str:
    """Display names joined for a sentence: "GFE-amd", "GFE-amd and GFE-rk4", "A, B and C"."""
    shown = [name(m) for m in models]
    return " and ".join(shown) if len(shown) < 3 else ", ".join(shown[:-1]) + f" and {shown[-1]}"


def dataset_name(dataset) -> str:
    """A dataset's display name: "Fashion-MNIST" for "fashion_mnist"."""
    return plotstyle.dataset_name(str(dataset))


def joined(values) -> str:
    """Values for a sentence: "0, 1, 2"."""
    return ", ".join(map(str, values))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(map(str, r)) + " |" for r in rows
    ]
