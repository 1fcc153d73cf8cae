"""Small pandas helpers: the rows of one dataset, per-seed means, seed pairs and the
validation steps that every run has."""

from __future__ import annotations

import pandas as pd


def select(frame: pd.DataFrame | None, dataset) -> pd.DataFrame:
    """Rows of `frame` for one dataset; an empty frame when the table is absent or empty."""
    if frame is None or frame.empty or "dataset" not in frame:
        return pd.DataFrame()
    return frame[frame["dataset"] == dataset]


def datasets(*frames) -> list:
    """The datasets named in any of `frames` (None or empty frames skipped), sorted."""
    found = set()
    for f in frames:
        if f is not None and not f.empty and "dataset" in f:
            found |= set(f["dataset"].dropna())
    return sorted(found, key=str)


def per_seed(frame: pd.DataFrame, value: str) -> pd.Series:
    """Column `value` of `frame` averaged per seed (one row per seed after the integrity gate)."""
    return frame.groupby("seed")[value].mean() if not frame.empty else pd.Series(dtype=float)


def pair(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Per-seed series `a` and `b` side by side (columns a and b), seeds present in both."""
    return pd.concat({"a": a, "b": b}, axis=1).dropna()


def common_steps(frame: pd.DataFrame) -> list:
    """Validation steps that every (model, seed) run of `frame` has, ascending."""
    if frame.empty:
        return []
    sets = [set(g["step"]) for _, g in frame.groupby(["model", "seed"])]
    return sorted(set.intersection(*sets))


def of_models(frame: pd.DataFrame, models) -> pd.DataFrame:
    """Rows of `frame` whose model is one of `models` (an empty frame stays empty)."""
    return frame[frame["model"].isin(list(models))] if not frame.empty else frame
