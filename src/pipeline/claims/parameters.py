"""Claim 1c: GFE has half the parameters of the autoencoder (E1's total_params column)."""

from __future__ import annotations

import pandas as pd

from . import e1
from .tables import datasets, select
from .text import fmt, name
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

MODEL = "gfe_amd"
LOW, HIGH = 0.45, 0.55


def meta() -> dict:
    """The claim's fixed text, written before the numbers."""
    return dict(
        number=1,
        part="c",
        title="half the parameters",
        statement="... with half the parameters.",
        criterion=(
            f"the ratio of total parameters {name(MODEL)}/{name(e1.REFERENCE)} lies in [{LOW}, {HIGH}] → "
            "supported, otherwise not supported; not tested when a model is missing or the runs of one "
            "model do not all have the same parameter count."
        ),
    )


def claim_half_parameters(e1_table: pd.DataFrame) -> list[Claim]:
    """Claim 1c, one per dataset. e1_table: E1's runs with dataset, model, train_size, seed,
    total_params."""
    m = meta()
    return each(m, datasets(e1_table), "The E1 table is empty.", lambda ds: _judge(m, select(e1_table, ds), ds))


def count_problem(part: pd.DataFrame, model: str) -> str:
    """Non-empty when a run of `model` has no parameter count or another count than the rest."""
    runs = part[part["model"] == model]
    if runs["total_params"].isna().any():
        row = runs[runs["total_params"].isna()].iloc[0]
        return f"the {name(model)} run at N = {row['train_size']}, seed {row['seed']}, has no parameter count"
    counts = runs["total_params"].astype("int64")
    if counts.nunique() > 1:
        usual = int(counts.mode().iloc[0])
        row = runs[counts != usual].iloc[0]
        return (
            f"the {name(model)} runs do not all have one parameter count: {int(row['total_params'])} at "
            f"N = {row['train_size']}, seed {row['seed']}, against {usual} in the others"
        )
    return ""


def _judge(m, part, ds) -> Claim:
    counts = {}
    for model in (e1.REFERENCE, MODEL):
        if part.empty or not (part["model"] == model).any():
            return make(m, ds, [], NOT_TESTED, f"E1 has no {name(model)} parameter count for {ds}.")
        if problem := count_problem(part, model):
            return make(m, ds, [], NOT_TESTED, f"In E1's table (e1_data_efficiency.csv) {problem}.")
        counts[model] = int(part.loc[part["model"] == model, "total_params"].iloc[0])
    ratio = counts[MODEL] / counts[e1.REFERENCE]
    ae, gfe = name(e1.REFERENCE), name(MODEL)
    evidence = [
        f"Total parameters: {ae} {counts[e1.REFERENCE]}, {gfe} {counts[MODEL]}; ratio {gfe}/{ae} = {fmt(ratio)}."
    ]
    ok = LOW <= ratio <= HIGH
    effect = Effect(
        measure=f"total parameters {MODEL} / {e1.REFERENCE}",
        effect=ratio,
        threshold=LOW,
        threshold_high=HIGH,
        unit="ratio",
        supported_when="effect within [threshold, threshold_high]",
    )
    reason = f"The ratio {fmt(ratio)} lies {'inside' if ok else 'outside'} [{LOW}, {HIGH}]."
    return make(m, ds, evidence, SUPPORTED if ok else NOT_SUPPORTED, reason, effect)
