"""Panels and curve helpers that more than one figure draws: E1's loss-against-N panel and E2's
learning curves."""

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from pipeline import plotstyle

CAPPED_NOTE = "hollow: a run stopped at its step cap (a mean or difference: one of its runs)"


# ---------------------------------------------------------------- E1: loss against N


def model_order(models) -> list[str]:
    """The models in the style's order (the workflow's), unknown ones last by name."""
    known = [m for m in plotstyle.MODEL_COLOURS if m in set(models)]
    return known + sorted(set(models) - set(known))


def offsets(sizes, n_models: int) -> np.ndarray:
    """Multiplicative x offsets of the models around each N: at most 0.045 decades apart, and
    together at most a third of the smallest gap between two sizes (log10)."""
    gaps = np.diff(np.log10(sorted(sizes)))
    room = min(0.045 * max(n_models - 1, 1), gaps.min() / 3 if len(gaps) else 0.1)
    step = room / max(n_models - 1, 1)
    return 10 ** (step * (np.arange(n_models) - (n_models - 1) / 2))


def count(v, _pos=None) -> str:
    return f"{v:,.0f}"


def size_axis(ax, sizes) -> None:
    """Log N axis with exactly the sizes as labelled ticks (no unlabelled minor ticks)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(count))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(sizes) / 1.4, max(sizes) * 1.4)
    ax.set_xlabel("training-set size N (images, log scale)")


def is_capped(runs: pd.DataFrame) -> pd.Series:
    """Runs that did not stop on a validation plateau (stop_reason other than 'plateau')."""
    return runs["stop_reason"] != "plateau"


def hollow(style: dict) -> dict:
    return {**style, "mfc": "white", "mew": 1.0}


def loss_panel(ax, part: pd.DataFrame) -> tuple[dict, bool, dict]:
    """One dataset's test loss against N on `ax`: ({legend label: handle}, whether any run was
    capped, {model: x offset factor}). part: the E1 rows of one dataset."""
    sizes = sorted(part["train_size"].unique())
    models = model_order(part["model"].unique())
    shift = dict(zip(models, offsets(sizes, len(models)), strict=True))
    # the single seeds just right of their mean, so that its marker does not cover them
    pair = offsets(sizes, max(len(models), 2))
    seed_shift = (pair[1] / pair[0]) ** 0.35
    handles: dict[str, object] = {}
    any_capped = False
    for model in models:
        g = part[part["model"] == model].assign(capped=lambda f: is_capped(f))
        style = plotstyle.marker_style(model)
        s = (
            g.groupby("train_size")
            .agg(loss=("test_loss_mean", "mean"), std=("test_loss_mean", "std"), capped=("capped", "any"))
            .fillna({"std": 0.0})
            .reset_index()
        )
        x = s["train_size"] * shift[model]
        any_capped |= bool(g["capped"].any())
        if len(s) >= 3:
            ax.plot(x, s["loss"], lw=0.8, alpha=0.7, **plotstyle.line_style(model))
        for capped, at in ((False, ~s["capped"]), (True, s["capped"])):
            if at.any():
                marker = hollow(style) if capped else style
                ax.errorbar(x[at], s.loc[at, "loss"], yerr=s.loc[at, "std"], ms=5, elinewidth=1, zorder=3, **marker)
        gx = g["train_size"] * shift[model] * seed_shift
        capped = g["capped"]
        if (~capped).any():
            ax.plot(gx[~capped], g.loc[~capped, "test_loss_mean"], ms=2.5, alpha=0.6, mew=0, zorder=2, **style)
        if capped.any():
            ax.plot(gx[capped], g.loc[capped, "test_loss_mean"], ms=3, mfc="white", mew=0.8, zorder=4, **style)
        handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(g)), Line2D([], [], ms=5, **style))
    size_axis(ax, sizes)
    return handles, any_capped, shift


def legend_entries(handles: dict, any_capped: bool, capped_note: str = CAPPED_NOTE) -> dict:
    """The loss panel's legend: the models, then what the small and the hollow markers mean."""
    legend = dict(handles)
    legend["single seeds"] = Line2D([], [], color="grey", marker="o", ls="none", ms=2.5, alpha=0.6, mew=0)
    if any_capped:
        legend[capped_note] = Line2D([], [], color="grey", marker="o", ls="none", ms=4, mfc="white")
    return legend


# ---------------------------------------------------------------- E2: learning curves


def line_style(model: str, rule: str) -> dict:
    """The model's style; GFE-amd trained with the per-sample rule is its dashed variant."""
    style = plotstyle.line_style(model)
    return {**style, "ls": "--"} if rule == "per-sample" and style["ls"] == "-" else style


def curves(part: pd.DataFrame):
    """((model, rule), seed count, per-step mean/std) of each model, the style's order, step 0 left out."""
    part = part.assign(amd_rule=part["amd_rule"].fillna(""))
    order = {m: i for i, m in enumerate(plotstyle.MODEL_COLOURS)}
    keys = sorted(part.groupby(["model", "amd_rule"]).groups, key=lambda k: (order.get(k[0], len(order)), k))
    for model, rule in keys:
        g = part[(part["model"] == model) & (part["amd_rule"] == rule)]
        s = (
            g[g["step"] > 0]
            .groupby("step")
            .agg(
                images=("images_seen", "first"),
                loss=("loss_mean", "mean"),
                std=("loss_mean", "std"),
                sec=("elapsed_s", "mean"),
            )
            .fillna({"std": 0.0})
        )
        yield (model, rule), g["seed"].nunique(), s
