"""E3 figure: first- vs second-order flow. Per dataset (one row): training loss vs iteration
(moving average of the seed mean) and held-out loss vs iteration (mean ± std over seeds)."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--train", required=True, help="per-step training table (dataset, model, seed, step, loss, ...)")
    p.add_argument("--heldout", required=True, help="held-out table (dataset, model, seed, step, n_images, loss_mean)")
    p.add_argument("--smooth", type=int, default=25, help="moving-average window of the training loss (iterations)")
    a = p.parse_args(argv)
    train, held = pd.read_csv(a.train), pd.read_csv(a.heldout)
    datasets = sorted(set(train["dataset"]) | set(held["dataset"]))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.6 * len(datasets)), squeeze=False, layout="constrained")
    for row, ds in zip(axes, datasets, strict=True):
        part, hpart = train[train["dataset"] == ds], held[held["dataset"] == ds]
        name = plotstyle.dataset_name(ds)
        for model, g in part.groupby("model", sort=True):
            color = plotstyle.COLORS.get(model)
            mean = g.groupby("step")["loss"].mean()
            row[0].plot(mean.index, mean, color=color, alpha=0.2, lw=0.8)
            row[0].plot(
                mean.index,
                mean.rolling(a.smooth, min_periods=1).mean(),
                color=color,
                label=f"{model} ({plotstyle.seeds_text(g)}; {a.smooth}-iteration moving average)",
            )
        for model, g in hpart.groupby("model", sort=True):
            color = plotstyle.COLORS.get(model)
            s = g.groupby("step")["loss_mean"].agg(["mean", "std"])
            row[1].plot(
                s.index,
                s["mean"],
                marker="o",
                ms=3,
                color=color,
                label=f"{model} (mean ± std, {plotstyle.seeds_text(g)})",
            )
            row[1].fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], color=color, alpha=0.2, lw=0)
        n_train = sorted(part["train_size"].unique()) if len(part) else []
        n_held = sorted(hpart["n_images"].unique()) if len(hpart) else []
        row[0].set_title(f"{name}: training loss (N = {', '.join(map(str, n_train))})")
        row[1].set_title(f"{name}: held-out loss ({', '.join(map(str, n_held))} validation images)")
        if len(part):
            row[0].plot([], [], color="gray", alpha=0.3, lw=0.8, label="faint: seed mean, unsmoothed")
        row[0].set_ylabel(plotstyle.two_lines(plotstyle.loss_label(ds, "training batch loss")))
        row[1].set_ylabel(plotstyle.two_lines(plotstyle.loss_label(ds, "held-out loss")))
        for ax in row:
            ax.set_xlabel("training iteration (optimiser steps)")
            if ax.has_data():
                ax.legend()
    models = ", ".join(sorted(set(train["model"]) | set(held["model"])))
    fig.suptitle(f"E3: first- vs second-order encoding flow in GFE training ({models})")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
