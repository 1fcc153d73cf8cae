"""Claim 1b: GFE stays competitive with the autoencoder when fully trained, a one-sided
non-inferiority test on excess test loss (loss minus the test images' entropy floor) at
the largest training-set size N ≥ min_n that passes the plateau gate. Judged for GFE-amd
(the papers' model) and, beyond the papers, for GFE-lbfgs (GFE's objective with a
per-sample L-BFGS encoder), with the same margin."""

from __future__ import annotations

import math

import pandas as pd

from . import e1
from .plateau import capped_note, gate_text, plateau_problem
from .stats import interval_problem, paired_interval
from .tables import datasets, select
from .text import fmt, fmt_interval, fmt_param, joined, mean_std, name, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

PAPERS_MODEL = "gfe_amd"
MARGIN = 0.10  # of the AE's mean excess loss at the judged N (fixed before the numbers)
MIN_N = 1000


def test_floor(floors: pd.DataFrame | None, dataset) -> float:
    """The test images' own loss floor of a dataset (data_floors table: dataset, split,
    floor_mean; split 'test'), or nan."""
    part = select(floors, dataset)
    part = part[part["split"] == "test"] if not part.empty else part
    return float(part["floor_mean"].iloc[0]) if len(part) == 1 else math.nan


def meta(model: str, margin: float, min_n: int) -> dict:
    """The claim's fixed text for `model`, written before the numbers."""
    gfe, ae = name(model), name(e1.REFERENCE)
    beyond = model != PAPERS_MODEL
    return dict(
        number=1,
        part="b",
        variant=gfe if beyond else "",
        title="competitive when fully trained",
        statement=(
            f"(Beyond the papers: their claim 1b for {gfe}, GFE's objective trained with a per-sample "
            "L-BFGS encoder.) ... and stays competitive when fully trained."
            if beyond
            else "... and stays competitive when fully trained."
        ),
        criterion=(
            f"excess test loss = test loss − the test images' own floor (mean per-pixel Bernoulli entropy, "
            f"the lowest loss any model can reach; data_floors.csv). At the largest N ≥ {min_n} with runs of "
            f"both models that passes the gate, with ≥ 2 paired seeds: the upper end of the 95% t-interval of "
            f"the paired excess-loss difference {gfe} − {ae} at most {fmt_param(margin)} × the AE's mean "
            f'excess loss at that N → supported ("clearly better" when it is below 0); above it → not '
            f"supported if every {gfe} run at that N stopped on its plateau, else not tested at this budget; "
            f"no such N → not tested at this budget. {gate_text()} {capped_note()} Why {fmt_param(margin)}: a "
            f"model that leaves at most {fmt_param(100 * margin)}% more of the reducible loss than the AE is "
            f"close to it by any reader's standard, while a margin on raw loss (most of which is the floor) "
            f"would hide a gap several times larger."
        ),
    )


def claim_competitive(
    e1_table: pd.DataFrame,
    floors: pd.DataFrame | None,
    config_hint: str,
    margin: float = MARGIN,
    min_n: int = MIN_N,
    seeds=None,
    continuation: pd.DataFrame | None = None,
    model: str = PAPERS_MODEL,
    sizes: dict | None = None,
) -> list[Claim]:
    """Claim 1b for `model`, one per dataset. e1_table: E1's runs (see claims.e1); floors: the
    data_floors table; config_hint: the config that tests what this budget cannot; margin:
    the non-inferiority margin, a fraction of the AE's mean excess loss; min_n: the smallest N
    that may decide; seeds, sizes: the configured seeds and sizes ({model: [N, ...]});
    continuation: e1_continuation.csv (without it no N passes the gate)."""
    m = meta(model, margin, min_n)

    def one(ds):
        part, cont = select(e1_table, ds), select(continuation, ds)
        return _judge(m, part, cont, test_floor(floors, ds), ds, config_hint, margin, min_n, seeds, model, sizes)

    return each(m, datasets(e1_table), "The E1 table is empty.", one)


def _margin(part: pd.DataFrame, n, floor: float, margin: float) -> float:
    ae = part[(part["train_size"] == n) & (part["model"] == e1.REFERENCE)]["test_loss_mean"] - floor
    return margin * float(ae.mean())


def excess_table(part, continuation, floor, margin, model) -> list[str]:
    """Every N with both models: excess loss per model, the paired difference with its 95%
    interval, the margin, whether the upper end is within it, plateaued runs and the gate."""
    ae, gfe = name(e1.REFERENCE), name(model)
    rows = []
    sizes = e1.common_sizes(part, model)
    for n in sizes:
        at = part[part["train_size"] == n]
        mean, lo, hi = paired_interval(e1.differences(part, n, model))
        bound = _margin(part, n, floor, margin)
        within = "n/a" if pd.isna(hi) else ("yes" if hi <= bound else "no")
        rows.append(
            [
                str(n),
                *(mean_std(at[at["model"] == x]["test_loss_mean"] - floor) for x in (e1.REFERENCE, model)),
                fmt_interval(mean, lo, hi),
                fmt(bound),
                within,
                *(e1.plateaued(part, n, x) for x in (e1.REFERENCE, model)),
                e1.gate_column(part, continuation, n),
            ]
        )
    header = ["N", f"{ae} excess", f"{gfe} excess", f"{gfe} − {ae} [95% CI]", "margin", "upper end ≤ margin"]
    header += [f"plateaued {ae}", f"plateaued {gfe}", f"{ae} plateau verified"]
    return [
        f"Excess test loss (test loss − the floor {fmt(floor)}), mean ± std over seeds; the difference "
        f"{gfe} − {ae} is paired by seed with its 95% t-interval (the floor cancels in it); the margin is "
        f"{fmt_param(margin)} × the AE's mean excess loss at that N:",
        "",
        *table(header, rows),
        "",
        *e1.gate_notes(part, continuation, sizes),
    ]


def _judge(m, part, continuation, floor, ds, hint, margin, min_n, seeds, model, sizes) -> Claim:
    gfe, ae, unit = name(model), name(e1.REFERENCE), f"excess {e1.loss_unit(ds)}"
    if missing := e1.missing_model(part, [e1.REFERENCE, model], ds):
        return make(m, ds, [], NOT_TESTED, missing)
    if problem := e1.e1_problem(part, model, seeds, sizes):
        return make(m, ds, [], NOT_TESTED, problem)
    if pd.isna(floor):
        return make(m, ds, [], NOT_TESTED, f"The data_floors table has no test floor for {ds}.")
    evidence = excess_table(part, continuation, floor, margin, model)
    candidates = [n for n in e1.common_sizes(part, model) if n >= min_n]
    n = next((n for n in reversed(candidates) if not plateau_problem(part, continuation, n)), None)
    if n is None:
        measure = f"no N ≥ {min_n} passes the gate" if candidates else f"no N ≥ {min_n} with runs of both models"
        if candidates:
            why = "; ".join(f"at N = {c} {plateau_problem(part, continuation, c)}" for c in reversed(candidates))
            reason = f"No N ≥ {min_n} passes the gate: {why}; `{hint}` tests the claim."
        else:
            sizes = joined(e1.common_sizes(part, model))
            reason = f"No N ≥ {min_n} has runs of both models (sizes with both: {sizes}); `{hint}` tests the claim."
        effect = Effect(measure=measure, unit=unit, supported_when="upper end ≤ threshold")
        return make(m, ds, evidence, NOT_TESTED, reason, effect)
    diffs = e1.differences(part, n, model)
    mean, lo, hi = paired_interval(diffs)
    text, bound = fmt_interval(mean, lo, hi), _margin(part, n, floor, margin)
    effect = Effect(
        measure=f"{model} − {e1.REFERENCE} at N = {n} (largest N ≥ {min_n} that passes the gate)",
        effect=mean,
        ci_low=lo,
        ci_high=hi,
        threshold=bound,
        unit=unit,
        supported_when="upper end ≤ threshold",
    )
    evidence.append(
        f"Largest N ≥ {min_n} that passes the gate = {n}, {len(diffs)} paired seeds: excess-loss difference "
        f"{gfe} − {ae} = {text}; margin {fmt(bound)}."
    )
    if problem := interval_problem(diffs):
        return make(m, ds, evidence, NOT_TESTED, f"At N = {n} {problem}; `{hint}` tests the claim.", effect)
    capped = e1.capped_text(part, n, model)
    if capped:
        evidence += ["", f"{capped}. {capped_note()}"]
    if hi <= bound:
        how = f"below 0: {gfe} is clearly better" if hi < 0 else f"at most the margin {fmt(bound)}"
        note = f" ({capped}: conservative)" if capped else ""
        return make(
            m, ds, evidence, SUPPORTED, f"At N = {n} the upper end of the interval ({text}) is {how}{note}.", effect
        )
    exceeds = f"At N = {n} the upper end of the interval ({text}) exceeds the margin {fmt(bound)}"
    if capped:
        reason = f"{exceeds}, but {capped}, not on a plateau: a capped run can support the claim but not refute it."
        return make(m, ds, evidence, NOT_TESTED, reason, effect)
    reason = f"{exceeds}: {gfe}'s excess loss is not shown to be within the margin of the AE's."
    return make(m, ds, evidence, NOT_SUPPORTED, reason, effect)
