"""E4 figure: approximate vs adjoint decoder gradient. Per dataset (a 2 × 2 block): (a) held-out
loss against iteration from the first validation after step 0, mean ± std over seeds; (b) in
claim 2's own unit, the paired difference of the held-out loss relative to the adjoint's excess
loss over the validation images' floor, (approximate − adjoint)/(adjoint − floor) per seed, in
%, mean with its 95% t-interval, and the criterion's margin (10%: claim_adjoint in src/pipeline/claims) as
a dashed line, the value at the last step written beside it (without --floors, the floor is
taken as 0: the difference relative to the adjoint's raw loss, and no margin is drawn); (c) the cosine
between the adjoint and the approximate decoder gradient per iteration (adjoint runs, one thin
line per seed, their mean), the axis fitted to the data; (d) wall-clock seconds per iteration,
mean over seeds of each run's mean, with each seed's value (timed on a shared machine)."""

import inspect
import math
import sys

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pipeline import claims, plotstyle

# Claim 2's margin on the difference relative to the adjoint's excess loss (one source of truth).
MARGIN = inspect.signature(claims.claim_adjoint).parameters["margin"].default


def adjoint_models(train) -> list[str]:
    """The models whose rows carry a gradient cosine (the adjoint runs)."""
    has = train.groupby("model")["grad_cosine"].apply(lambda c: bool(np.isfinite(c).any()))
    return sorted(has[has].index)


def model_order(models) -> list[str]:
    known = [m for m in plotstyle.MODEL_COLOURS if m in set(models)]
    return known + sorted(set(models) - set(known))


def val_floor(floors: pd.DataFrame | None, dataset) -> float:
    """The validation images' own loss floor of a dataset (data_floors table, split 'val'), or nan."""
    if floors is None:
        return math.nan
    part = floors[(floors["dataset"] == dataset) & (floors["split"] == "val")]
    return float(part["floor_mean"].iloc[0]) if len(part) == 1 else math.nan


def relative_difference(held: pd.DataFrame, approximate: str, adjoint: str, floor: float = 0.0) -> pd.DataFrame:
    """Per validation step: mean, 95% t-interval and seed count of 100 (approximate − adjoint)
    / (adjoint − floor) of loss_mean, over the seeds that have both models at that step: with
    the validation floor, claim 2's measure (claim_adjoint in src/pipeline/claims) in %."""
    wide = held[held["model"].isin([approximate, adjoint])].pivot_table(
        index=["step", "seed"], columns="model", values="loss_mean", aggfunc="mean"
    )
    wide = wide.dropna()
    rows = []
    relative = 100 * (wide[approximate] - wide[adjoint]) / (wide[adjoint] - floor)
    for step, g in relative.groupby(level="step"):
        mean, low, high = plotstyle.t_interval(g.to_numpy())
        rows.append({"step": step, "mean": mean, "low": low, "high": high, "n": len(g)})
    return pd.DataFrame(rows, columns=["step", "mean", "low", "high", "n"])


def difference_panel(ax, held: pd.DataFrame, approximate: str, adjoint: str, floor: float, tag: str, handles) -> None:
    """Panel (b): 100 (approximate − adjoint)/(adjoint − floor) per step, paired by seed, with
    its 95% t-interval; with a floor, claim 2's margin and the value at the last step."""
    excess = math.isfinite(floor)
    d = relative_difference(held, approximate, adjoint, floor if excess else 0.0)
    colour = plotstyle.DIFFERENCE_COLOUR
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.fill_between(d["step"], d["low"], d["high"], color=colour, alpha=0.2, lw=0)
    (line,) = ax.plot(d["step"], d["mean"], marker="o", ms=2.5, lw=1.1, color=colour)
    n = int(d["n"].max()) if len(d) else 0
    handles["paired difference, mean over seeds"] = line
    handles[f"its 95% t-interval ({n} seeds)"] = Patch(color=colour, alpha=0.2, lw=0)
    first, second = plotstyle.display_name(approximate), plotstyle.display_name(adjoint)
    if excess:
        margin = 100 * MARGIN
        ax.axhline(margin, gid="claim-margin", **plotstyle.THRESHOLD_STYLE)
        handles[f"claim 2's margin: {margin:g}% of the adjoint's excess loss"] = Line2D(
            [], [], **plotstyle.THRESHOLD_STYLE
        )
        ax.set_ylim(min(ax.get_ylim()[0], 0.0), max(ax.get_ylim()[1], 1.15 * margin))
        ax.set_title(
            f"({tag}) ({first} − {second}) / ({second} − floor)\nby seed, floor {floor:.4f}; > 0: {first} worse"
        )
        ax.set_ylabel("held-out loss difference\n(% of the adjoint's excess loss)")
        if len(d) and d["step"].iloc[-1] > 0:
            last = d.iloc[-1]
            ax.annotate(
                f"step {int(last['step'])}: {last['mean']:.2f}% (95% CI {last['low']:.2f} to {last['high']:.2f})",
                (last["step"], last["high"]),
                xytext=(0, 6),
                textcoords="offset points",
                ha="right",
                fontsize=plotstyle.SMALL_PT,
                gid="claim-value",
            )
    else:
        ax.set_title(f"({tag}) ({first} − {second}) / {second}\nby seed, on raw loss (no floor given)")
        ax.set_ylabel("held-out loss difference\n(% of the adjoint's loss)")


def heldout_loss_panel(ax, hpart: pd.DataFrame, models: list[str], ds, tag: str, handles) -> None:
    """Panel (a): held-out loss after step 0, mean ± std over seeds, a line per model."""
    for model in models:
        g = hpart[(hpart["model"] == model) & (hpart["step"] > 0)]
        if g.empty:
            continue
        style = plotstyle.line_style(model)
        s = g.groupby("step")["loss_mean"].agg(["mean", "std"]).fillna(0.0)
        (line,) = ax.plot(s.index, s["mean"], marker="o", ms=2.5, lw=1.1, **style)
        ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=style["color"], alpha=0.2, lw=0)
        handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(hpart[hpart["model"] == model])), line)
    n_held = ", ".join(str(n) for n in sorted(hpart["n_images"].unique())) if len(hpart) else "?"
    ax.set_title(f"({tag}) {plotstyle.dataset_name(ds)}: held-out loss\n{n_held} validation images, ± std over seeds")
    ax.set_ylabel(plotstyle.short_loss_label(ds, "held-out loss"))


def no_pair_panel(ax, tag: str) -> None:
    """Panel (b) when the dataset lacks an adjoint or an approximate model with held-out rows."""
    ax.text(0.5, 0.5, "no adjoint/approximate pair", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(f"({tag}) relative difference")
    ax.set_ylabel("held-out loss difference (%)")


def cosine_panel(ax, part: pd.DataFrame, adjoint: list[str], tag: str, handles) -> None:
    """Panel (c): the gradient cosine of the adjoint runs, a thin line per seed and their mean
    in black, the axis fitted to the data."""
    for model in adjoint:
        g = part[(part["model"] == model) & np.isfinite(part["grad_cosine"])]
        colour = plotstyle.model_colour(model)
        for j, (_seed, gs) in enumerate(g.groupby("seed", sort=True)):
            (thin,) = ax.plot(gs["step"], gs["grad_cosine"], lw=0.6, alpha=0.7, color=colour)
            if j == 0:
                handles.setdefault(f"{plotstyle.display_name(model)}: cosine of one seed", thin)
        if g["seed"].nunique() > 1:
            mean = g.groupby("step")["grad_cosine"].mean()
            (thick,) = ax.plot(mean.index, mean, lw=1.2, color="black")
            handles.setdefault(f"{plotstyle.display_name(model)}: cosine, mean over seeds", thick)
    if adjoint:
        values = part.loc[part["model"].isin(adjoint), "grad_cosine"].dropna()
        low, high = float(values.min()), float(values.max())
        pad = 0.05 * max(high - low, 1e-3)
        ax.set_ylim(low - pad, min(1.0 + pad, high + pad))
    else:
        ax.text(0.5, 0.5, "no adjoint run with a gradient cosine", transform=ax.transAxes, ha="center")
    ax.set_title(f"({tag}) cosine(adjoint, approximate)\nof the decoder gradient")
    ax.set_ylabel("cosine (unitless)")


def time_panel(ax, part: pd.DataFrame, models: list[str], adjoint, approx, tag: str, handles) -> None:
    """Panel (d): wall-clock seconds per iteration, a bar at the mean over seeds of each run's
    mean and a circle per seed; the title gives the adjoint / approximate ratio."""
    per_run = part.groupby(["model", "seed"])["seconds"].mean()
    names = [m for m in models if m in per_run.index.get_level_values("model")]
    xs = np.arange(len(names))
    means = [float(per_run[m].mean()) for m in names]
    ax.bar(xs, means, width=0.6, color=[plotstyle.model_colour(m) for m in names], alpha=0.8)
    for x, m in zip(xs, names, strict=True):
        seeds = per_run[m].to_numpy()
        ax.plot(x + np.linspace(-0.12, 0.12, len(seeds)), seeds, "o", ms=3, color="black", mfc="white", mew=0.8)
    ax.set_xticks(xs, [plotstyle.display_name(m) for m in names])
    ax.set_ylabel("seconds per iteration\n(shared machine)")
    if adjoint and approx and adjoint[0] in names and approx[0] in names:
        ratio = means[names.index(adjoint[0])] / means[names.index(approx[0])]
        detail = f"{plotstyle.display_name(adjoint[0])} / {plotstyle.display_name(approx[0])} = {ratio:.1f}×"
    else:
        detail = "one iteration"
    ax.set_title(f"({tag}) wall-clock cost per iteration\n{detail}")
    ax.grid(axis="x", visible=False)
    if names:
        handles["bar: mean over seeds; circles: each seed's mean"] = Patch(color="grey", alpha=0.8)


def dataset_block(axes, ds, part: pd.DataFrame, hpart: pd.DataFrame, floor: float, tag: dict, handles) -> None:
    """One dataset's 2 × 2 block (panels a to d) from its training rows `part` and held-out
    rows `hpart`; `floor` is its validation floor (nan: none)."""
    (loss_ax, diff_ax), (cos_ax, time_ax) = axes
    adjoint = adjoint_models(part) if len(part) else []
    models = model_order(set(part["model"]) | set(hpart["model"]))
    approx = [m for m in models if m not in adjoint]
    heldout_loss_panel(loss_ax, hpart, models, ds, tag["loss"], handles)
    held_models = set(hpart["model"])
    if adjoint and approx and adjoint[0] in held_models and approx[0] in held_models:
        difference_panel(diff_ax, hpart, approx[0], adjoint[0], floor, tag["diff"], handles)
    else:
        no_pair_panel(diff_ax, tag["diff"])
    cosine_panel(cos_ax, part, adjoint, tag["cos"], handles)
    for ax in (loss_ax, diff_ax, cos_ax):
        ax.set_xlabel("training iteration")
    time_panel(time_ax, part, models, adjoint, approx, tag["time"], handles)


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument(
        "--train",
        required=True,
        help="per-step training table (dataset, model, seed, step, loss, seconds, grad_cosine, ...)",
    )
    p.add_argument("--heldout", required=True, help="held-out table (dataset, model, seed, step, n_images, loss_mean)")
    p.add_argument("--floors", default=None, help="data_floors.csv (its validation floor: claim 2's unit)")
    a = p.parse_args(argv)
    train, held = pd.read_csv(a.train), pd.read_csv(a.heldout)
    floors = pd.read_csv(a.floors) if a.floors else None
    datasets = sorted(set(train["dataset"]) | set(held["dataset"]))
    fig, axes = plotstyle.figure("double", 4.4 * len(datasets) + 0.45, 2 * len(datasets), 2, squeeze=False)
    handles: dict[str, object] = {}
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for i, ds in enumerate(datasets):
        tag = {k: next(letters) for k in ("loss", "diff", "cos", "time")}
        part, hpart = train[train["dataset"] == ds], held[held["dataset"] == ds]
        dataset_block(axes[2 * i : 2 * i + 2], ds, part, hpart, val_floor(floors, ds), tag, handles)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 2))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
