"""E5's encoding curves as evidence for claim 3 (never a verdict): each flow on the decoder
it trained, and the common decoder's rk4 curves. e5: dataset, panel, decoder_model, solver,
order, steps, tau, t, nfe_mean, loss_mean."""

from __future__ import annotations

import math

import pandas as pd

from .text import fmt, name, steps_text, table

CURVE = ["panel", "decoder_model", "solver", "order", "steps", "tau"]


def curves(e5: pd.DataFrame):
    """(key dict, curve sorted by t) for each E5 curve; steps is NaN for AMD."""
    if e5.empty:
        return []
    keys = [k for k in CURVE if k in e5]
    return [
        (dict(zip(keys, key, strict=True)), g.sort_values("t")) for key, g in e5.groupby(keys, dropna=False, sort=True)
    ]


def _curve_order(key: dict) -> tuple:
    """Sort by order, τ, steps (missing last), then decoder."""
    number = lambda k: math.inf if pd.isna(key.get(k, math.nan)) else float(key[k])  # noqa: E731
    return (number("order"), number("tau"), number("steps"), str(key.get("decoder_model")))


def e5_lines(e5: pd.DataFrame) -> list[str]:
    """Own-decoder curves: loss at a quarter of the integration time and final; common-decoder rk4 finals."""
    own, common = [], []
    for key, c in sorted(curves(e5), key=lambda kc: _curve_order(kc[0])):
        final = fmt(c["loss_mean"].iloc[-1])
        if key.get("panel") == "own decoder" and key.get("order") in (1, 2):
            tau = key["tau"] if not pd.isna(key.get("tau", math.nan)) else c["t"].max()
            quarter = c.loc[(c["t"] - tau / 4).abs().idxmin()]
            own.append(
                [
                    f"{key['order']:.0f}",
                    name(key.get("decoder_model")),
                    str(key.get("solver")),
                    steps_text(key.get("steps")),
                    fmt(tau),
                    f"{fmt(quarter['loss_mean'])} (t = {fmt(quarter['t'])})",
                    final,
                ]
            )
        elif key.get("panel") == "common decoder" and key.get("solver") == "rk4":
            common.append([f"{key['order']:.0f}", fmt(key.get("tau")), steps_text(key.get("steps")), final])
    lines = []
    if own:
        lines += [
            "",
            "E5, each flow on the decoder it trained (evidence only):",
            "",
            *table(["order", "decoder", "solver", "steps", "τ", "loss at τ/4", "final loss"], own),
        ]
    if common:
        lines += [
            "",
            "E5, common decoder, rk4, final loss (evidence only):",
            "",
            *table(["order", "τ", "steps", "final loss"], common),
        ]
    return lines or ["", "No E5 curves for this dataset."]


def own_decoder_note(e5: pd.DataFrame, first: str, second: str) -> list[str]:
    """A sentence on E5's own-decoder curves: each flow's loss at τ/4 on the decoder it trained."""
    quarter = {}
    for key, c in curves(e5):
        if key.get("panel") == "own decoder" and key.get("decoder_model") in (first, second):
            tau = key["tau"] if not pd.isna(key.get("tau", math.nan)) else c["t"].max()
            quarter[key["decoder_model"]] = float(c.loc[(c["t"] - tau / 4).abs().idxmin(), "loss_mean"])
    if len(quarter) < 2:
        return []
    faster = "faster" if quarter[second] < quarter[first] else "slower"
    return [
        "",
        f"Along the encoding flow (E5, each flow on the decoder it trained; evidence only, the claim is "
        f"judged on training): at τ/4 {name(second)} reaches {fmt(quarter[second])} and {name(first)} "
        f"{fmt(quarter[first])}, so there the second-order flow is {faster}.",
    ]
