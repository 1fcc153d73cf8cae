"""The integrity gate every claim passes through before any interval is computed.

A table can carry a verdict only when it is the configured experiment, whole: every
configured seed, size, decoder and setting present; one row per key; a finite number
wherever one is due; every run reaching the configured length; and the reference curve a
real training curve. pandas would otherwise skip NaNs, average duplicates and shrink
windows to the shortest run, and a broken table would give a confident verdict. Each check
returns "" when the table passes it, else a phrase naming the run and the check; the claim
is then "not tested at this budget" with that phrase in its reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .text import fmt, fmt_param, joined, name

# A reference curve learned when its held-out loss falls below this fraction of its step-0
# value and stays below it to the end (fixed before the numbers).
LEARNED_FRACTION = 0.9


def _where(row, keys) -> str:
    return ", ".join(f"{k} {row[k]}" for k in keys)


def duplicate_problem(frame: pd.DataFrame, keys: list[str]) -> str:
    """Non-empty when some `keys` combination has more than one row."""
    duplicated = frame[frame.duplicated(keys, keep=False)]
    if not len(duplicated):
        return ""
    where = _where(duplicated.iloc[0], keys)
    return f"the table has {len(duplicated)} duplicated rows ({where}, ...), so it is not one row per run"


def finite_problem(frame: pd.DataFrame, keys: list[str], values: list[str]) -> str:
    """Non-empty when a column of `values` holds a missing or non-finite number."""
    for value in values:
        numbers = pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype=float)
        bad = frame[~np.isfinite(numbers)]
        if len(bad):
            row = bad.iloc[0]
            return f"{value} is not a finite number ({row[value]}) at {_where(row, keys)} ({len(bad)} such rows)"
    return ""


def seed_problem(frame: pd.DataFrame, seeds=None) -> str:
    """Non-empty when a model lacks one of `seeds` (the configured seeds), or, without them,
    one of the seeds another model has."""
    found = {m: sorted(set(g["seed"])) for m, g in frame.groupby("model", sort=True)}
    wanted = sorted(seeds) if seeds is not None else sorted(set().union(*map(set, found.values())))
    missing = {m: sorted(set(wanted) - set(s)) for m, s in found.items() if set(wanted) - set(s)}
    if not missing:
        return ""
    text = "; ".join(f"{m} lacks seed(s) {joined(s)}" for m, s in missing.items())
    return f"{text} of seeds {joined(wanted)}"


def length_problem(frame: pd.DataFrame, step=None) -> str:
    """Non-empty when a (model, seed) run does not end at the configured last validation
    `step`, or, without it, when the runs end at different steps (a truncated run)."""
    last = frame.groupby(["model", "seed"])["step"].max()
    if step is None:
        if last.nunique() > 1:
            (model, seed), short = last.idxmin(), last.min()
            return f"the {model} run of seed {seed} ends at step {short}, others at step {last.max()} (a truncated run)"
        return ""
    for (model, seed), end in last.items():
        if end < step:
            return f"the {model} run of seed {seed} ends at step {end}, short of the configured step {step} (truncated)"
        if end > step:
            return f"the {model} run of seed {seed} goes on to step {end}, past the configured step {step}"
    return ""


def grid_problem(frame: pd.DataFrame, column: str, wanted: dict) -> str:
    """Non-empty when a model lacks a configured value of `column`. wanted: {model: values}
    (the configured training-set sizes of each model, say); models not in it are not checked."""
    for model, values in wanted.items():
        found = set(frame.loc[frame["model"] == model, column]) if not frame.empty else set()
        missing = [v for v in values if v not in found]
        if missing:
            return f"{model} lacks {column} {joined(missing)} of the configured {joined(values)}"
    return ""


def table_problem(frame: pd.DataFrame, keys: list[str], values: list[str], seeds=None, step=None) -> str:
    """Why `frame` (the rows of the models one claim compares) cannot carry a verdict, or ""
    when it can: duplicated `keys`, non-finite `values`, a missing seed of `seeds`, and, when
    "step" is a key, a run that does not reach the configured last `step` (or, without it,
    the runs' common last step)."""
    if frame.empty:
        return ""
    problem = duplicate_problem(frame, keys) or finite_problem(frame, keys, values) or seed_problem(frame, seeds)
    if not problem and "step" in keys:
        problem = length_problem(frame, step)
    return problem


def learned_problem(frame: pd.DataFrame, model: str, value: str = "loss_mean") -> str:
    """Non-empty when a run of the reference `model` is not a real training curve: its held-out
    `value` never falls below LEARNED_FRACTION × its step-0 value (it did not learn), or
    rises back to it after falling below (it broke down)."""
    bound = fmt_param(LEARNED_FRACTION)
    for seed, run in frame[frame["model"] == model].groupby("seed", sort=True):
        run = run.sort_values("step")
        start = run.loc[run["step"] == 0, value]
        if start.empty:
            return (
                f"the reference {name(model)} run of seed {seed} has no step-0 check, so whether it learned is unknown"
            )
        bar = LEARNED_FRACTION * float(start.iloc[0])
        below = run[(run["step"] > 0) & (run[value] < bar)]
        if below.empty:
            end = run.iloc[-1]
            return (
                f"the reference {name(model)} run of seed {seed} did not learn: its held-out loss never falls below "
                f"{bound} × its step-0 value {fmt(start.iloc[0])} (step {end['step']}: {fmt(end[value])})"
            )
        back = run[(run["step"] > below["step"].iloc[0]) & (run[value] >= bar)]
        if len(back):
            row = back.iloc[0]
            return (
                f"the reference {name(model)} run of seed {seed} broke down: after falling to "
                f"{fmt(run[value].min())} its held-out loss is back at {fmt(row[value])} at step {row['step']}, "
                f"at or above {bound} × its step-0 value {fmt(start.iloc[0])}"
            )
    return ""
