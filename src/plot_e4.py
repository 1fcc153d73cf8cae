"""E4 figure: approximate vs adjoint decoder gradient. Per dataset (a 2 × 2 block): (a) held-out
loss against iteration from the first validation after step 0, mean ± std over seeds; (b) the
paired relative difference (approximate − adjoint)/adjoint of the held-out loss per seed, in %,
mean with its 95% t-interval (the curves of (a) overlap; this shows their gap); (c) the cosine
between the adjoint and the approximate decoder gradient per iteration (adjoint runs, one thin
line per seed, their mean), the axis fitted to the data; (d) wall-clock seconds per iteration,
mean over seeds of each run's mean, with each seed's value (timed on a shared machine)."""

import sys

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

import plotstyle


def adjoint_models(train) -> list[str]:
    """The models whose rows carry a gradient cosine (the adjoint runs)."""
    has = train.groupby("model")["grad_cosine"].apply(lambda c: bool(np.isfinite(c).any()))
    return sorted(has[has].index)


def model_order(models) -> list[str]:
    known = [m for m in plotstyle.MODEL_COLOURS if m in set(models)]
    return known + sorted(set(models) - set(known))


def relative_difference(held: pd.DataFrame, approximate: str, adjoint: str) -> pd.DataFrame:
    """Per validation step: mean, 95% t-interval and seed count of 100 (approximate − adjoint)
    / adjoint of loss_mean, over the seeds that have both models at that step."""
    wide = held[held["model"].isin([approximate, adjoint])].pivot_table(
        index=["step", "seed"], columns="model", values="loss_mean", aggfunc="mean"
    )
    wide = wide.dropna()
    rows = []
    for step, g in (100 * (wide[approximate] - wide[adjoint]) / wide[adjoint]).groupby(level="step"):
        mean, low, high = plotstyle.t_interval(g.to_numpy())
        rows.append({"step": step, "mean": mean, "low": low, "high": high, "n": len(g)})
    return pd.DataFrame(rows, columns=["step", "mean", "low", "high", "n"])


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument(
        "--train",
        required=True,
        help="per-step training table (dataset, model, seed, step, loss, seconds, grad_cosine, ...)",
    )
    p.add_argument("--heldout", required=True, help="held-out table (dataset, model, seed, step, n_images, loss_mean)")
    a = p.parse_args(argv)
    train, held = pd.read_csv(a.train), pd.read_csv(a.heldout)
    datasets = sorted(set(train["dataset"]) | set(held["dataset"]))
    fig, axes = plotstyle.figure("double", 4.4 * len(datasets) + 0.45, 2 * len(datasets), 2, squeeze=False)
    handles: dict[str, object] = {}
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for i, ds in enumerate(datasets):
        (loss_ax, diff_ax), (cos_ax, time_ax) = axes[2 * i], axes[2 * i + 1]
        tag = {k: next(letters) for k in ("loss", "diff", "cos", "time")}
        part, hpart = train[train["dataset"] == ds], held[held["dataset"] == ds]
        name = plotstyle.dataset_name(ds)
        adjoint = adjoint_models(part) if len(part) else []
        models = model_order(set(part["model"]) | set(hpart["model"]))
        approx = [m for m in models if m not in adjoint]
        # (a) held-out loss after step 0, mean ± std over seeds.
        for model in models:
            g = hpart[(hpart["model"] == model) & (hpart["step"] > 0)]
            if g.empty:
                continue
            style = plotstyle.line_style(model)
            s = g.groupby("step")["loss_mean"].agg(["mean", "std"]).fillna(0.0)
            (line,) = loss_ax.plot(s.index, s["mean"], marker="o", ms=2.5, lw=1.1, **style)
            loss_ax.fill_between(
                s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=style["color"], alpha=0.2, lw=0
            )
            handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(hpart[hpart["model"] == model])), line)
        n_held = ", ".join(str(n) for n in sorted(hpart["n_images"].unique())) if len(hpart) else "?"
        loss_ax.set_title(f"({tag['loss']}) {name}: held-out loss\n{n_held} validation images, ± std over seeds")
        loss_ax.set_ylabel(plotstyle.short_loss_label(ds, "held-out loss"))
        # (b) paired relative difference with its 95% t-interval.
        held_models = set(hpart["model"])
        if adjoint and approx and adjoint[0] in held_models and approx[0] in held_models:
            d = relative_difference(hpart, approx[0], adjoint[0])
            colour = plotstyle.DIFFERENCE_COLOUR
            diff_ax.axhline(0.0, color="grey", lw=0.8)
            diff_ax.fill_between(d["step"], d["low"], d["high"], color=colour, alpha=0.2, lw=0)
            diff_ax.plot(d["step"], d["mean"], marker="o", ms=2.5, lw=1.1, color=colour)
            n = int(d["n"].max()) if len(d) else 0
            handles["paired relative difference, mean over seeds"] = diff_ax.lines[-1]
            handles[f"its 95% t-interval ({n} seeds)"] = Patch(color=colour, alpha=0.2, lw=0)
            first, second = plotstyle.display_name(approx[0]), plotstyle.display_name(adjoint[0])
            diff_ax.set_title(
                f"({tag['diff']}) ({first} − {second}) / {second}\npaired by seed (> 0: approximate worse)"
            )
        else:
            diff_ax.text(0.5, 0.5, "no adjoint/approximate pair", transform=diff_ax.transAxes, ha="center", va="center")
            diff_ax.set_title(f"({tag['diff']}) relative difference")
        diff_ax.set_ylabel("held-out loss difference (%)")
        # (c) gradient cosine of the adjoint runs, the axis fitted to the data.
        for model in adjoint:
            g = part[(part["model"] == model) & np.isfinite(part["grad_cosine"])]
            colour = plotstyle.model_colour(model)
            for j, (_seed, gs) in enumerate(g.groupby("seed", sort=True)):
                (thin,) = cos_ax.plot(gs["step"], gs["grad_cosine"], lw=0.6, alpha=0.7, color=colour)
                if j == 0:
                    handles.setdefault(f"{plotstyle.display_name(model)}: cosine of one seed", thin)
            if g["seed"].nunique() > 1:
                mean = g.groupby("step")["grad_cosine"].mean()
                (thick,) = cos_ax.plot(mean.index, mean, lw=1.2, color="black")
                handles.setdefault(f"{plotstyle.display_name(model)}: cosine, mean over seeds", thick)
        if adjoint:
            values = part.loc[part["model"].isin(adjoint), "grad_cosine"].dropna()
            low, high = float(values.min()), float(values.max())
            pad = 0.05 * max(high - low, 1e-3)
            cos_ax.set_ylim(low - pad, min(1.0 + pad, high + pad))
        else:
            cos_ax.text(0.5, 0.5, "no adjoint run with a gradient cosine", transform=cos_ax.transAxes, ha="center")
        cos_ax.set_title(f"({tag['cos']}) cosine(adjoint, approximate)\nof the decoder gradient")
        cos_ax.set_ylabel("cosine (unitless)")
        for ax in (loss_ax, diff_ax, cos_ax):
            ax.set_xlabel("training iteration")
        # (d) wall-clock seconds per iteration: each run's mean, their mean over seeds.
        per_run = part.groupby(["model", "seed"])["seconds"].mean()
        names = [m for m in models if m in per_run.index.get_level_values("model")]
        xs = np.arange(len(names))
        means = [float(per_run[m].mean()) for m in names]
        time_ax.bar(xs, means, width=0.6, color=[plotstyle.model_colour(m) for m in names], alpha=0.8)
        for x, m in zip(xs, names, strict=True):
            seeds = per_run[m].to_numpy()
            time_ax.plot(
                x + np.linspace(-0.12, 0.12, len(seeds)), seeds, "o", ms=3, color="black", mfc="white", mew=0.8
            )
        time_ax.set_xticks(xs, [plotstyle.display_name(m) for m in names])
        time_ax.set_ylabel("seconds per iteration\n(shared machine)")
        if adjoint and approx and adjoint[0] in names and approx[0] in names:
            ratio = means[names.index(adjoint[0])] / means[names.index(approx[0])]
            detail = f"{plotstyle.display_name(adjoint[0])} / {plotstyle.display_name(approx[0])} = {ratio:.1f}×"
        else:
            detail = "one iteration"
        time_ax.set_title(f"({tag['time']}) wall-clock cost per iteration\n{detail}")
        time_ax.grid(axis="x", visible=False)
        if names:
            handles["bar: mean over seeds; circles: each seed's mean"] = Patch(color="grey", alpha=0.8)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 2))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
