"""Claim 2 (E4): training with the approximate gradient loses little against the full
adjoint, a non-inferiority test on held-out excess loss at the configured last step."""

from __future__ import annotations

import math

import pandas as pd

from .integrity import learned_problem, table_problem
from .stats import interval_problem, paired_interval
from .tables import common_steps, datasets, of_models, pair, per_seed, select
from .text import fmt, fmt_interval, fmt_param, mean_std, name, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

MARGIN = 0.10  # claim 1b's: of the adjoint's excess loss
APPROXIMATE, ADJOINT = "gfe_rk4", "gfe_adjoint"


def val_floor(floors: pd.DataFrame | None, dataset) -> float:
    """The validation images' own loss floor of a dataset (data_floors table, split 'val'), or nan."""
    part = select(floors, dataset)
    part = part[part["split"] == "val"] if not part.empty else part
    return float(part["floor_mean"].iloc[0]) if len(part) == 1 else math.nan


def relative_at(frame, step, first, second, floor: float = 0.0) -> pd.Series:
    """Per seed at `step`: (first − second)/(second − floor) of loss_mean, the difference
    relative to the second model's excess loss over `floor`."""
    at = frame[frame["step"] == step]
    p = pair(per_seed(at[at["model"] == first], "loss_mean"), per_seed(at[at["model"] == second], "loss_mean"))
    return (p["a"] - p["b"]) / (p["b"] - floor)


def heldout_rows(frame, steps, models, compare) -> list[list[str]]:
    """Per step: held-out loss mean ± std for each model, then compare(frame, step) as an interval."""
    return [
        [
            str(s),
            *(mean_std(frame.loc[(frame["step"] == s) & (frame["model"] == m), "loss_mean"]) for m in models),
            fmt_interval(*paired_interval(compare(frame, s))),
        ]
        for s in steps
    ]


def cost_lines(train: pd.DataFrame, approximate: str, adjoint: str) -> list[str]:
    """grad_cosine of the adjoint runs and seconds per iteration of each model (train: E4's
    per-step log with model, seconds, grad_cosine)."""
    if train.empty:
        return ["No per-step training log for this dataset."]
    cos = train.loc[train["model"] == adjoint, "grad_cosine"].dropna()
    sec = {m: train.loc[train["model"] == m, "seconds"].mean() for m in (approximate, adjoint)}
    return [
        f"Cosine between the approximate and the adjoint gradient over {len(cos)} steps of the "
        f"{name(adjoint)} runs: mean {fmt(cos.mean() if len(cos) else None)}, "
        f"min {fmt(cos.min() if len(cos) else None)}.",
        f"Seconds per iteration: {name(approximate)} {fmt(sec[approximate])}, {name(adjoint)} {fmt(sec[adjoint])} "
        f"({name(adjoint)}/{name(approximate)} = {fmt(sec[adjoint] / sec[approximate])}).",
    ]


def meta(approximate: str, adjoint: str, margin: float) -> dict:
    """The claim's fixed text, written before the numbers."""
    a, b = name(approximate), name(adjoint)
    return dict(
        number=2,
        title="the approximate gradient loses little against the adjoint",
        statement=(
            "Training with the approximate gradient (the encoding treated as a constant) loses little "
            "against the full adjoint."
        ),
        criterion=(
            f"excess loss = held-out loss − the validation images' own floor (mean per-pixel Bernoulli "
            f"entropy; data_floors.csv). At the configured last validation step, paired by seed, the upper "
            f"end of the 95% t-interval of the held-out loss difference relative to the adjoint's excess "
            f"loss, ({a} − {b})/({b} − floor), is ≤ {fmt_param(margin)} → supported; its lower end > "
            f"{fmt_param(margin)} → not supported; straddling {fmt_param(margin)} → not supported (interval "
            f"too wide to show it). The margin is claim 1b's: at most {fmt_param(100 * margin)}% more of the "
            f"reducible loss (a margin on raw loss, most of which is the floor, would allow a gap several "
            f"times larger). Not tested at this budget when there is no floor, fewer than 2 seeds pair, the "
            f"last step is step 0, the reference {b} did not learn or broke down (its held-out loss not below "
            f"0.9 × its step-0 value to the end), or the table is broken (a missing configured seed, a run "
            f"short of the configured step, a duplicated row, a non-finite loss, identical differences)."
        ),
    )


def claim_adjoint(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    floors: pd.DataFrame | None,
    margin: float = MARGIN,
    approximate: str = APPROXIMATE,
    adjoint: str = ADJOINT,
    seeds=None,
    step=None,
) -> list[Claim]:
    """Claim 2, one per dataset. heldout: dataset, model, seed, step, loss_mean (one row per run
    and validation point); train: dataset, model, seed, step, seconds, grad_cosine (per step);
    floors: the data_floors table (its validation floor); seeds: the configured seeds; step:
    the configured last validation step (without it: the last step, the same for every run)."""
    m = meta(approximate, adjoint, margin)

    def one(ds):
        held, log = select(heldout, ds), select(train, ds)
        return _judge(m, held, log, val_floor(floors, ds), ds, margin, approximate, adjoint, seeds, step)

    return each(m, datasets(heldout, train), "The E4 tables are empty.", one)


def _judge(m, held, train, floor, ds, margin, approximate, adjoint, seeds, step) -> Claim:
    costs = cost_lines(train, approximate, adjoint)
    for model in (approximate, adjoint):
        if held.empty or not (held["model"] == model).any():
            return make(m, ds, costs, NOT_TESTED, f"E4 has no held-out loss of {name(model)} runs for {ds}.")
    held = of_models(held, [approximate, adjoint])
    steps = common_steps(held)
    problem = table_problem(held, ["model", "seed", "step"], ["loss_mean"], seeds, step)
    if not problem and steps and steps[-1] > 0:
        problem = learned_problem(held, adjoint)
    if problem:
        why = f"In E4's held-out table (e4_heldout.csv) {problem}; no verdict is drawn from it."
        return make(m, ds, [], NOT_TESTED, why)
    if pd.isna(floor):
        return make(m, ds, [], NOT_TESTED, f"The data_floors table has no validation floor for {ds}.")
    last = steps[-1] if step is None else step
    compare = lambda f, s: relative_at(f, s, approximate, adjoint, floor)  # noqa: E731
    a, b = name(approximate), name(adjoint)
    evidence = [
        f"Held-out loss, mean ± std over seeds, at every validation step; the difference relative to {b}'s "
        f"excess loss over the floor {fmt(floor)}, paired by seed, with its 95% t-interval:",
        "",
        *table(
            ["step", a, b, f"({a} − {b})/({b} − floor) [95% CI]"],
            heldout_rows(held, steps, [approximate, adjoint], compare),
        ),
        "",
        *costs,
    ]
    if last == 0:
        return make(m, ds, evidence, NOT_TESTED, "The runs have no validation step after step 0.")
    rel = compare(held, last)
    mean, lo, hi = paired_interval(rel)
    effect = Effect(
        measure=f"({approximate} − {adjoint})/({adjoint} − floor) at step {last}",
        effect=mean,
        ci_low=lo,
        ci_high=hi,
        threshold=margin,
        unit="fraction of the adjoint's excess held-out loss",
        supported_when="upper end ≤ threshold",
    )
    if problem := interval_problem(rel):
        return make(m, ds, evidence, NOT_TESTED, f"At step {last} {problem}.", effect)
    text, at = fmt_interval(mean, lo, hi), f"At the last step {last} ({len(rel)} paired seeds) the interval"
    if hi <= margin:
        return make(m, ds, evidence, SUPPORTED, f"{at} {text} ends at or below {fmt_param(margin)}.", effect)
    if lo > margin:
        why = f"{at} {text} lies entirely above {fmt_param(margin)}: the approximate gradient loses more than that."
        return make(m, ds, evidence, NOT_SUPPORTED, why, effect)
    why = f"{at} {text} straddles {fmt_param(margin)}: too wide to show that the approximate gradient loses little."
    return make(m, ds, evidence, NOT_SUPPORTED, why, effect)
