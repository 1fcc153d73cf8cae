"""Claim 3 (E3): the second-order (Nesterov) flow converges faster per iteration than the
first-order flow, judged on the held-out learning curves of both models' decoders encoded
by one common encoder: the mean loss over every validation step after 0 (a discrete area
under the curve), with the difference at the configured last step beside it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .adjoint import heldout_rows
from .encoding_curves import e5_lines, own_decoder_note
from .integrity import learned_problem, table_problem
from .stats import interval_problem, paired_interval
from .tables import common_steps, datasets, of_models, pair, per_seed, select
from .text import fmt, fmt_interval, mean_std, name, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

FIRST, SECOND = "gfe_rk4", "gfe_2nd"


def meta(first: str, second: str) -> dict:
    """The claim's fixed text, written before the numbers."""
    a, b = name(first), name(second)
    return dict(
        number=3,
        title="the second-order flow converges faster per iteration",
        statement=(
            "The second-order (Nesterov) flow converges faster per iteration than the first-order gradient flow."
        ),
        criterion=(
            f"{b} and {a} train from the same initial decoder on the same batches, and both models' held-out "
            f"checkpoints are encoded by one common encoder (so their losses are equal at step 0, and a "
            f"difference is the decoders'); per seed, the mean held-out loss over all validation steps after "
            f"step 0 up to the configured last step (a discrete area under the learning curve: lower means "
            f"faster per iteration); the 95% paired t-interval of ({b} − {a}) lies entirely below 0 → "
            f"supported; otherwise not supported. The difference at the configured last step is reported "
            f"beside it (a late reversal shows there). Not tested at this budget when fewer than 2 seeds "
            f"pair, fewer than 2 steps follow step 0, the reference {a} did not learn or broke down (its "
            f"held-out loss not below 0.9 × its step-0 value to the end), the table is broken (a missing "
            f"configured seed, a run short of the configured step, a duplicated row, a non-finite loss, "
            f"identical differences) or the step-0 losses differ (the models were encoded by different "
            f"encoders)."
        ),
    )


def claim_second_order(
    heldout: pd.DataFrame,
    e5: pd.DataFrame,
    first: str = FIRST,
    second: str = SECOND,
    seeds=None,
    train: pd.DataFrame | None = None,
    step=None,
) -> list[Claim]:
    """Claim 3, one per dataset. heldout: dataset, model, seed, step, loss_mean (both models'
    checkpoints encoded by one common flow); e5: E5's curves (evidence only, see
    claims.encoding_curves); train: the E3 training logs, dataset, model, seed, step, loss
    (the authors' evidence, shown only); seeds: the configured seeds; step: the configured
    last validation step (without it: the last step, the same for every run)."""
    m = meta(first, second)

    def one(ds):
        return _judge(m, select(heldout, ds), select(e5, ds), ds, first, second, seeds, select(train, ds), step)

    return each(m, datasets(heldout, e5), "The E3 held-out table and the E5 table are empty.", one)


def train_rows(train: pd.DataFrame, first: str, second: str, windows: int = 5) -> list[list[str]]:
    """Training loss (the authors' evidence), mean over equal windows of steps: per model mean
    ± std over seeds of each seed's window mean, and the paired difference."""
    if train.empty or not {"model", "seed", "step", "loss"} <= set(train.columns):
        return []
    last = int(train["step"].max())
    edges = np.unique(np.linspace(0, last, min(windows, last) + 1).round().astype(int))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        part = train[(train["step"] > lo) & (train["step"] <= hi)]
        means = {m: part[part["model"] == m].groupby("seed")["loss"].mean() for m in (first, second)}
        pairs = pair(means[first], means[second])
        m, low, high = paired_interval(pairs["b"] - pairs["a"]) if len(pairs) else (math.nan,) * 3
        rows.append([f"{lo + 1}–{hi}", mean_std(means[first]), mean_std(means[second]), fmt_interval(m, low, high)])
    return rows


def step0_problem(held: pd.DataFrame, first: str, second: str) -> str:
    """Non-empty when the two models' held-out losses at step 0 differ for some seed."""
    start = held[held["step"] == 0]
    pairs = pair(
        per_seed(start[start["model"] == first], "loss_mean"), per_seed(start[start["model"] == second], "loss_mean")
    )
    gap = (pairs["b"] - pairs["a"]).abs()
    if len(gap) and float(gap.max()) > 1e-9 * float(pairs["a"].abs().max()):
        return (
            f"the held-out losses at step 0 differ by up to {fmt(float(gap.max()))} although both models start "
            "from the same decoder: their checkpoints were encoded by different encoders (encoder and decoder "
            "mixed); set solver_comparison.heldout_encoder"
        )
    return ""


def difference(frame: pd.DataFrame, first: str, second: str) -> pd.Series:
    """Per seed: second − first of loss_mean, averaged over the rows of `frame`."""
    p = pair(
        per_seed(frame[frame["model"] == first], "loss_mean"), per_seed(frame[frame["model"] == second], "loss_mean")
    )
    return p["b"] - p["a"]


def _judge(m, held, e5, ds, first, second, seeds, train, step) -> Claim:
    a, b = name(first), name(second)
    for model in (first, second):
        if held.empty or not (held["model"] == model).any():
            return make(m, ds, e5_lines(e5), NOT_TESTED, f"E3 has no held-out loss of {name(model)} runs for {ds}.")
    held = of_models(held, [first, second])
    steps = common_steps(held)
    problem = table_problem(held, ["model", "seed", "step"], ["loss_mean"], seeds, step)
    problem = problem or step0_problem(held, first, second)
    if not problem and len([s for s in steps if s > 0]) >= 2:
        problem = learned_problem(held, first)
    if problem:
        why = f"In E3's held-out table (e3_heldout.csv) {problem}; no verdict is drawn from it."
        return make(m, ds, e5_lines(e5), NOT_TESTED, why)
    last = steps[-1]
    shown = sorted({steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, min(6, len(steps)))})
    compare = lambda f, s: difference(f[f["step"] == s], first, second)  # noqa: E731
    evidence = [
        "Held-out loss, mean ± std over seeds, at matched validation steps; difference paired by seed "
        "with its 95% t-interval:",
        "",
        *table(["step", a, b, f"{b} − {a} [95% CI]"], heldout_rows(held, shown, [first, second], compare)),
    ]
    after = [s for s in steps if s > 0]
    diff = difference(held[held["step"].isin(after)], first, second)
    mean, lo, hi = paired_interval(diff)
    at_last = paired_interval(compare(held, last))
    text = fmt_interval(mean, lo, hi)
    evidence += [
        "",
        f"Mean held-out loss over the {len(after)} matched steps after 0, {b} − {a}, {len(diff)} paired seeds: {text}.",
        f"At the last step {last}, {b} − {a}: {fmt_interval(*at_last)}.",
    ]
    if rows := train_rows(train, first, second):
        evidence += [
            "",
            "Training loss (the authors' evidence; each step's batch encoded by the model's own flow), mean "
            "over windows of steps, mean ± std over seeds, difference paired by seed:",
            "",
            *table(["steps", a, b, f"{b} − {a} [95% CI]"], rows),
        ]
    evidence += [*own_decoder_note(e5, first, second), *e5_lines(e5)]
    effect = Effect(
        measure=f"{second} − {first}, mean held-out loss over the steps after 0",
        effect=mean,
        ci_low=lo,
        ci_high=hi,
        threshold=0.0,
        unit=f"held-out loss ({'MSE' if str(ds) == 'cifar10' else 'BCE'})",
        supported_when="upper end < threshold",
    )
    if len(after) < 2:
        why = f"Only {len(after)} matched validation step(s) follow step 0, too few for a learning curve."
        return make(m, ds, evidence, NOT_TESTED, why, effect)
    if problem := interval_problem(diff):
        return make(m, ds, evidence, NOT_TESTED, f"In the area difference {problem}.", effect)
    final = f"; at the last step {last} the difference is {fmt_interval(*at_last)}"
    if hi < 0:
        return make(
            m,
            ds,
            evidence,
            SUPPORTED,
            f"The interval of the area difference ({text}) lies entirely below 0{final}.",
            effect,
        )
    why = "lies entirely above 0: the second-order flow is slower" if lo > 0 else "contains 0: no speed-up is shown"
    return make(m, ds, evidence, NOT_SUPPORTED, f"The interval of the area difference ({text}) {why}{final}.", effect)
