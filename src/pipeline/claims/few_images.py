"""Claim 1a: GFE reaches a lower loss than the autoencoder from far fewer training images,
judged at E1's smallest training-set size."""

from __future__ import annotations

import pandas as pd

from . import e1
from .plateau import capped_note, gate_text, plateau_problem
from .stats import interval_problem, paired_interval
from .tables import datasets, select
from .text import fmt_interval, name
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

MODEL = "gfe_amd"


def meta() -> dict:
    """The claim's fixed text, written before the numbers."""
    gfe, ae = name(MODEL), name(e1.REFERENCE)
    return dict(
        number=1,
        part="a",
        title="lower loss from far fewer training images",
        statement="GFE reaches a lower reconstruction loss than the autoencoder from far fewer training images.",
        criterion=(
            f"at the smallest training-set size N with runs of both models, paired by seed, the 95% "
            f"t-interval of the test-loss difference {gfe} − {ae}: entirely below 0 → supported; entirely "
            f"above 0 or containing 0 → not supported if every {gfe} run at that N stopped on its plateau, "
            f"else not tested at this budget. {capped_note()} {gate_text()} Not tested at this budget also "
            "when the smallest N fails the gate, fewer than 2 seeds pair, or the table is broken (a missing "
            "configured seed or size, a duplicated row, a non-finite loss)."
        ),
    )


def claim_few_images(
    e1_table: pd.DataFrame,
    config_hint: str,
    seeds=None,
    continuation: pd.DataFrame | None = None,
    sizes: dict | None = None,
) -> list[Claim]:
    """Claim 1a, one per dataset. e1_table: E1's runs (see claims.e1); config_hint: the config
    that tests what this budget cannot; seeds: the configured seeds; continuation:
    e1_continuation.csv (without it the AE's plateau is unverified and the claim not tested);
    sizes: the configured training-set sizes of each model ({model: [N, ...]})."""
    m = meta()
    return each(
        m,
        datasets(e1_table),
        "The E1 table is empty.",
        lambda ds: _judge(m, select(e1_table, ds), select(continuation, ds), ds, config_hint, seeds, sizes),
    )


def _judge(m, part, continuation, ds, hint, seeds, sizes) -> Claim:
    if missing := e1.missing_model(part, [e1.REFERENCE, MODEL], ds):
        return make(m, ds, [], NOT_TESTED, missing)
    if problem := e1.e1_problem(part, MODEL, seeds, sizes):
        return make(m, ds, [], NOT_TESTED, problem)
    n = e1.common_sizes(part, MODEL)[0]
    diffs = e1.differences(part, n, MODEL)
    mean, lo, hi = paired_interval(diffs)
    text, gfe, ae = fmt_interval(mean, lo, hi), name(MODEL), name(e1.REFERENCE)
    effect = Effect(
        measure=f"{MODEL} − {e1.REFERENCE} at N = {n} (smallest N)",
        effect=mean,
        ci_low=lo,
        ci_high=hi,
        threshold=0.0,
        unit=e1.loss_unit(ds),
        supported_when="upper end < threshold",
    )
    evidence = e1.loss_table(part, continuation, MODEL)
    evidence += ["", f"Smallest N = {n}, {len(diffs)} paired seeds: {gfe} − {ae} = {text}."]
    if gate := plateau_problem(part, continuation, n):
        why = f"The smallest N = {n} does not decide the claim: {gate}; `{hint}` tests it."
        return make(m, ds, evidence, NOT_TESTED, why, effect)
    if problem := interval_problem(diffs):
        return make(m, ds, evidence, NOT_TESTED, f"At N = {n} {problem}; `{hint}` tests the claim.", effect)
    capped = e1.capped_text(part, n, MODEL)
    if capped:
        evidence += ["", f"{capped}. {capped_note()}"]
    if hi < 0:
        note = f" ({capped}: conservative)" if capped else ""
        reason = f"At N = {n} the interval of {gfe} − {ae} ({text}) lies entirely below 0{note}."
        return make(m, ds, evidence, SUPPORTED, reason, effect)
    why = "lies entirely above 0: GFE's loss is higher" if lo > 0 else "contains 0: no advantage is shown"
    if capped:
        reason = (
            f"At N = {n} the interval of {gfe} − {ae} ({text}) {why}, but {capped}, not on a plateau: "
            "a capped run can support the claim but not refute it."
        )
        return make(m, ds, evidence, NOT_TESTED, reason, effect)
    return make(m, ds, evidence, NOT_SUPPORTED, f"At N = {n} the interval of {gfe} − {ae} ({text}) {why}.", effect)
