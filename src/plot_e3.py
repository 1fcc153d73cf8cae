"""E3 figure (or E4 with --cost): training loss vs iteration per model; with --cost a
second panel shows the mean wall-clock cost of one iteration of each model."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--title", default="E3")
    p.add_argument("--cost", action="store_true")
    p.add_argument("--smooth", type=int, default=10, help="moving-average window (iterations)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    ncols = 2 if a.cost else 1
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(4.8 * ncols, 3.4 * len(datasets)), squeeze=False)
    for row, ds in zip(axes, datasets):
        part = t[t["dataset"] == ds]
        costs = {}
        for model, g in part.groupby("model", sort=False):
            color = plotstyle.COLORS.get(model)
            row[0].plot(g["step"], g["loss"], alpha=0.25, color=color)
            row[0].plot(g["step"], g["loss"].rolling(a.smooth, min_periods=1).mean(), color=color,
                        label=f"{model} ({a.smooth}-iteration mean)")
            costs[model] = g["seconds"].mean()
        row[0].set_xlabel("iteration (optimiser step)")
        row[0].set_ylabel(plotstyle.loss_label(ds, "training loss"))
        row[0].set_title(f"{ds}: {a.title}, N = {part['train_size'].iloc[0]}")
        row[0].legend()
        if a.cost:
            names = list(costs)
            row[1].bar(names, [costs[m] for m in names], color=[plotstyle.COLORS.get(m) for m in names])
            row[1].set_ylabel("wall-clock time per iteration (s, this machine)")
            row[1].set_title(f"{ds}: cost of one iteration")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
