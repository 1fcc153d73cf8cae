"""E4 figure: approximate vs adjoint decoder gradient. Per dataset (one row): held-out loss
vs iteration (mean ± std over seeds); cosine between the adjoint and the approximate
decoder gradient per iteration (adjoint runs, one thin line per seed); mean wall-clock
seconds per iteration per model."""

import sys

import numpy as np
import pandas as pd

import plotstyle
from plotstyle import plt


def adjoint_models(train) -> list[str]:
    """The models whose rows carry a gradient cosine (the adjoint runs)."""
    has = train.groupby("model")["grad_cosine"].apply(lambda c: bool(np.isfinite(c).any()))
    return sorted(has[has].index)


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
    fig, axes = plt.subplots(
        len(datasets),
        3,
        figsize=(13, 3.6 * len(datasets)),
        squeeze=False,
        layout="constrained",
        width_ratios=[1.2, 1.2, 0.8],
    )
    for row, ds in zip(axes, datasets, strict=True):
        part, hpart = train[train["dataset"] == ds], held[held["dataset"] == ds]
        name = plotstyle.dataset_name(ds)
        adjoint = adjoint_models(part) if len(part) else []
        # Held-out loss, mean ± std over seeds.
        for model, g in hpart.groupby("model", sort=True):
            color = plotstyle.COLORS.get(model)
            s = g.groupby("step")["loss_mean"].agg(["mean", "std"])
            row[0].plot(
                s.index,
                s["mean"],
                marker="o",
                ms=3,
                color=color,
                label=f"{model} (mean ± std, {plotstyle.seeds_text(g)})",
            )
            row[0].fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=color, alpha=0.2, lw=0)
        n_held = sorted(hpart["n_images"].unique()) if len(hpart) else []
        row[0].set_title(f"{name}: held-out loss ({', '.join(map(str, n_held))} val. images)")
        row[0].set_xlabel("training iteration (optimiser steps)")
        row[0].set_ylabel(plotstyle.two_lines(plotstyle.loss_label(ds, "held-out loss")))
        # Gradient cosine of the adjoint runs.
        for model in adjoint:
            g = part[(part["model"] == model) & np.isfinite(part["grad_cosine"])]
            color = plotstyle.COLORS.get(model)
            for i, (_seed, gs) in enumerate(g.groupby("seed", sort=True)):
                row[1].plot(
                    gs["step"],
                    gs["grad_cosine"],
                    lw=0.7,
                    alpha=0.6,
                    color=color,
                    label=f"{model} runs (one line per seed, {plotstyle.seeds_text(g)})" if i == 0 else None,
                )
            if g["seed"].nunique() > 1:
                mean = g.groupby("step")["grad_cosine"].mean()
                row[1].plot(mean.index, mean, lw=1.2, color="black", label=f"{model}: mean over seeds")
        row[1].axhline(1.0, color="gray", lw=0.8, ls=":")
        if adjoint:  # zoomed to the cosines (from at most 0.9 up to 1), so that the seeds' lines can be told apart
            low = part.loc[part["model"].isin(adjoint), "grad_cosine"].min()
            row[1].set_ylim(min(0.9, low - 0.02), 1.005)
        row[1].set_title(f"{name}: adjoint vs approximate gradient")
        row[1].set_xlabel("training iteration (optimiser steps)")
        row[1].set_ylabel("cosine(adjoint, approximate)\n(decoder gradient, unitless)")
        if not adjoint:
            row[1].text(
                0.5, 0.5, "no adjoint run with a gradient cosine", transform=row[1].transAxes, ha="center", va="center"
            )
        # Wall-clock seconds per iteration: mean over seeds of each run's mean, std over seeds.
        per_run = part.groupby(["model", "seed"])["seconds"].mean().groupby("model").agg(["mean", "std"])
        names = list(per_run.index)
        row[2].bar(
            names,
            per_run["mean"],
            yerr=per_run["std"].fillna(0),
            capsize=3,
            color=[plotstyle.COLORS.get(m, "gray") for m in names],
        )
        row[2].set_ylabel("wall-clock time per iteration\n(s, this machine; mean ± std over seeds)")
        row[2].set_xlabel("model")
        approx = [m for m in names if m not in adjoint]
        if adjoint and approx:
            ratio = per_run.loc[adjoint[0], "mean"] / per_run.loc[approx[0], "mean"]
            row[2].set_title(f"{name}: cost per iteration\n{adjoint[0]} / {approx[0]} = {ratio:.2f}×")
        else:
            row[2].set_title(f"{name}: cost of one iteration")
        for ax in row[:2]:
            if ax.has_data():
                ax.legend()
    models = ", ".join(sorted(set(train["model"]) | set(held["model"])))
    fig.suptitle(f"E4: approximate vs adjoint decoder gradient in GFE training ({models})")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
