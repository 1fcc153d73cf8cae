"""The plateau gate of the data-efficiency claims (1a, 1b): an E1 training-set size N can
decide them only when the autoencoder there is fully trained, verified.

Both claims point against GFE when a GFE run stops early (a run stopped at its step budget
has a loss at or above its own plateau), so only the AE must be on a plateau: every AE run at
N stopped on its plateau rule, and every continuation at N (of any model: runs trained on
without early stopping) lowers the best validation loss by at most CONTINUATION_BOUND. A
missing continuation table, or no AE continuation at N, leaves the AE's plateau unverified.
"""

from __future__ import annotations

import math

import pandas as pd

from .text import joined, name

# A stop is early when training on lowers the best validation loss by more than this
# (fixed before the numbers).
CONTINUATION_BOUND = 0.005


def _bound() -> str:
    return f"{100 * CONTINUATION_BOUND:g}%"


def ae_problem(e1: pd.DataFrame, n, reference: str = "ae") -> str:
    """Non-empty when an AE run of `e1` (one dataset) at N = n did not stop on a plateau."""
    runs = e1[(e1["train_size"] == n) & (e1["model"] == reference)]
    early = runs[runs["stop_reason"] != "plateau"]
    if runs.empty:
        return f"there is no {name(reference)} run at N = {n}"
    if len(early):
        return (
            f"{len(early)} of {len(runs)} {name(reference)} runs at N = {n} (seed {joined(sorted(early['seed']))}) "
            "stopped at their step cap, not on a plateau"
        )
    return ""


def continuation_problem(continuation: pd.DataFrame | None, n, reference: str = "ae") -> str:
    """Non-empty when the continuations (one dataset's rows of e1_continuation.csv: model,
    train_size, seed, gain) at N = n do not verify the AE's plateau: no table, no AE
    continuation, a gain that is not a number, or one above CONTINUATION_BOUND."""
    if continuation is None or continuation.empty:
        return (
            f"there is no continuation table (e1_continuation.csv), so the {name(reference)}'s plateau is not verified"
        )
    at = continuation[continuation["train_size"] == n]
    if not (at["model"] == reference).any():
        return f"no {name(reference)} continuation at N = {n} verifies its plateau"
    for row in at.sort_values(["model", "seed"]).itertuples():
        gain = float(row.gain) if pd.notna(row.gain) else math.nan
        if not math.isfinite(gain):
            return f"the {name(row.model)} continuation at N = {n}, seed {row.seed}, has no finite gain ({row.gain})"
        if gain > CONTINUATION_BOUND:
            return (
                f"the {name(row.model)} continuation at N = {n}, seed {row.seed}, lowers the best validation loss "
                f"by {100 * gain:.2f}% > {_bound()}"
            )
    return ""


def plateau_problem(e1: pd.DataFrame, continuation: pd.DataFrame | None, n, reference: str = "ae") -> str:
    """Why N = n cannot decide claims 1a and 1b ("" when it can): the AE not on a verified
    plateau there. e1, continuation: one dataset's rows."""
    return ae_problem(e1, n, reference) or continuation_problem(continuation, n, reference)


def gate_text() -> str:
    """The gate as one sentence of criterion text, fixed before the numbers."""
    return (
        "The gate: an N is judged only when every AE run there stopped on its validation plateau and every "
        "continuation at that N (a run trained on without early stopping, of any model) lowers the best "
        f"validation loss by at most {_bound()}; at least one of them must be the AE's, since without one its "
        "plateau is unverified."
    )


def capped_note() -> str:
    """Why capped GFE runs may support the claim: one sentence for the summary."""
    return (
        "A GFE run stopped at its step budget has a loss at or above its own plateau, so when it already "
        "beats or matches a fully trained AE the claim holds a fortiori; such runs can support the claim "
        "but not refute it."
    )
