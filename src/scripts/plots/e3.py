"""E3 figure: first- vs second-order flow. Per dataset (one row): (a) training batch loss
against iteration, each seed smoothed by a centred moving window that narrows towards both ends
(so the smoothing neither lags nor lifts the steep start), mean ± std over seeds;
(b) held-out loss (both models' checkpoints encoded by one common encoder) from the first
validation after step 0, mean ± std over seeds; (c) the paired held-out difference
second − first order per seed, mean with its 95% t-interval, at every validation step."""

import sys

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from pipeline import plotstyle

FIRST, SECOND = "gfe_rk4", "gfe_2nd"


def centred_smooth(values, window: int) -> np.ndarray:
    """Centred moving average of `values` (in step order) whose half-width at index i is
    min(window // 2, i // 2, (n - 1 - i) // 2): symmetric everywhere (no lag), the raw value at
    either end and a window growing away from it, so a steep start is neither lagged (as by a
    trailing window) nor averaged with many later, lower values."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(len(v))
    half = np.minimum(window // 2, np.minimum(i, len(v) - 1 - i) // 2)
    lo, hi = i - half, i + half + 1
    return (c[hi] - c[lo]) / (hi - lo)


def pair_models(models) -> tuple[str, str] | None:
    """(first, second) order models of the difference panel: gfe_rk4 and gfe_2nd, or else the
    two models of the table in the style's order; None when there are not two."""
    models = list(models)
    if FIRST in models and SECOND in models:
        return FIRST, SECOND
    order = [m for m in plotstyle.MODEL_COLOURS if m in models] + sorted(set(models) - set(plotstyle.MODEL_COLOURS))
    return (order[0], order[1]) if len(order) == 2 else None


def paired_difference(held: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Per validation step: mean, 95% t-interval and seed count of (second − first) loss_mean,
    over the seeds that have both models at that step."""
    wide = held[held["model"].isin([first, second])].pivot_table(
        index=["step", "seed"], columns="model", values="loss_mean", aggfunc="mean"
    )
    wide = wide.dropna()
    rows = []
    for step, g in (wide[second] - wide[first]).groupby(level="step"):
        mean, low, high = plotstyle.t_interval(g.to_numpy())
        rows.append({"step": step, "mean": mean, "low": low, "high": high, "n": len(g)})
    return pd.DataFrame(rows, columns=["step", "mean", "low", "high", "n"])


def training_loss_panel(ax, part: pd.DataFrame, order: list[str], window: int, handles) -> None:
    """Panel (a): each seed's training batch loss smoothed by `centred_smooth`, mean ± std over
    seeds, a line per model; the top of the axis cut to the curves after their first 5%."""
    tops = []
    for model in order:
        g = part[part["model"] == model].sort_values("step")
        if g.empty:
            continue
        style = plotstyle.line_style(model)
        smooth = g.groupby("seed", group_keys=False)["loss"].apply(
            lambda s: pd.Series(centred_smooth(s.to_numpy(), window), index=s.index)
        )
        s = g.assign(smooth=smooth).groupby("step")["smooth"].agg(["mean", "std"]).fillna(0.0)
        (line,) = ax.plot(s.index, s["mean"], lw=1.1, **style)
        ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=style["color"], alpha=0.2, lw=0)
        handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(g)), line)
        tops.append(float((s["mean"] + s["std"])[s.index >= s.index.max() / 20].max()))
    if tops:  # the steep first iterations (from the untrained loss) run off the top
        low = ax.get_ylim()[0]
        ax.set_ylim(low, max(tops) + 0.1 * (max(tops) - low))


def heldout_loss_panel(ax, hpart: pd.DataFrame, order: list[str], handles) -> None:
    """Panel (b): held-out loss after step 0, mean ± std over seeds, a line per model."""
    for model in order:
        g = hpart[(hpart["model"] == model) & (hpart["step"] > 0)]
        if g.empty:
            continue
        style = plotstyle.line_style(model)
        s = g.groupby("step")["loss_mean"].agg(["mean", "std"]).fillna(0.0)
        (line,) = ax.plot(s.index, s["mean"], marker="o", ms=2.5, lw=1.1, **style)
        ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=style["color"], alpha=0.2, lw=0)
        handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(hpart[hpart["model"] == model])), line)


def difference_panel(ax, hpart: pd.DataFrame, ds, tag: str, handles) -> None:
    """Panel (c): the paired held-out difference second − first order with its 95% t-interval,
    or a note when the table has no pair of models."""
    pair = pair_models(hpart["model"].unique()) if len(hpart) else None
    if not pair:
        ax.text(0.5, 0.5, "no pair of models to compare", transform=ax.transAxes, ha="center", va="center")
        ax.set_title(f"({tag}) paired difference")
        return
    first, second = pair
    d = paired_difference(hpart, first, second)
    colour = plotstyle.DIFFERENCE_COLOUR
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.fill_between(d["step"], d["low"], d["high"], color=colour, alpha=0.2, lw=0)
    ax.plot(d["step"], d["mean"], marker="o", ms=2.5, lw=1.1, color=colour)
    n = int(d["n"].max()) if len(d) else 0
    ax.set_title(f"({tag}) {plotstyle.display_name(second)} − {plotstyle.display_name(first)}\npaired by seed")
    ax.set_ylabel(plotstyle.short_loss_label(ds, "held-out loss difference"))
    handles["paired difference, mean over seeds"] = ax.lines[-1]
    handles[f"95% t-interval of the paired difference ({n} seeds)"] = Patch(color=colour, alpha=0.2, lw=0)


def dataset_row(row, ds, part: pd.DataFrame, hpart: pd.DataFrame, tags: str, window: int, handles) -> None:
    """One dataset's row (panels a to c) from its training rows `part` and held-out rows `hpart`."""
    name = plotstyle.dataset_name(ds)
    order = [m for m in plotstyle.MODEL_COLOURS if m in set(part["model"]) | set(hpart["model"])]
    training_loss_panel(row[0], part, order, window, handles)
    heldout_loss_panel(row[1], hpart, order, handles)
    difference_panel(row[2], hpart, ds, tags[2], handles)
    n_train = ", ".join(f"{n:,}" for n in sorted(part["train_size"].unique())) if len(part) else "?"
    n_held = ", ".join(str(n) for n in sorted(hpart["n_images"].unique())) if len(hpart) else "?"
    row[0].set_title(f"({tags[0]}) training batch loss\nN = {n_train}, centred {window}-step window")
    row[1].set_title(f"({tags[1]}) held-out loss\n{n_held} validation images")
    row[0].set_ylabel(f"{name}\n{plotstyle.short_loss_label(ds, 'training batch loss')}")
    row[1].set_ylabel(plotstyle.short_loss_label(ds, "held-out loss"))
    for ax in row:
        ax.set_xlabel("training iteration")


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--train", required=True, help="per-step training table (dataset, model, seed, step, loss, ...)")
    p.add_argument("--heldout", required=True, help="held-out table (dataset, model, seed, step, n_images, loss_mean)")
    p.add_argument("--smooth", type=int, default=25, help="width of the centred window of the training loss (steps)")
    a = p.parse_args(argv)
    train, held = pd.read_csv(a.train), pd.read_csv(a.heldout)
    datasets = sorted(set(train["dataset"]) | set(held["dataset"]))
    fig, axes = plotstyle.figure("double", 2.4 * len(datasets) + 0.45, len(datasets), 3, squeeze=False)
    handles: dict[str, object] = {}
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for row, ds in zip(axes, datasets, strict=True):
        tags = next(letters) + next(letters) + next(letters)
        part, hpart = train[train["dataset"] == ds], held[held["dataset"] == ds]
        dataset_row(row, ds, part, hpart, tags, a.smooth, handles)
    handles["band in the loss panels: ± std over seeds"] = Patch(color="grey", alpha=0.2, lw=0)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 3))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
