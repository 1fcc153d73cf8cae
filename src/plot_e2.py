"""E2 figure: validation loss vs training images seen, and vs wall-clock seconds (N = full)."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(9, 3.4 * len(datasets)), squeeze=False)
    for row, ds in zip(axes, datasets):
        part = t[t["dataset"] == ds]
        for model, g in part.groupby("model"):
            s = g.groupby("step").agg(images=("images_seen", "first"), loss=("loss_mean", "mean"),
                                      std=("loss_mean", "std"), sec=("elapsed_s", "mean")).fillna(0)
            for ax, x in ((row[0], s["images"]), (row[1], s["sec"])):
                ax.plot(x, s["loss"], marker=".", label=model, color=plotstyle.COLORS.get(model))
                ax.fill_between(x, s["loss"] - s["std"], s["loss"] + s["std"], alpha=0.2,
                                color=plotstyle.COLORS.get(model))
        row[0].set_xlabel("training images seen (images)")
        row[1].set_xlabel("training wall-clock time (s, this machine)")
        for ax in row:
            ax.set_ylabel(plotstyle.loss_label(ds, "validation loss"))
            ax.legend()
        row[0].set_title(f"{ds}: E2, N = full, {part['n_images'].iloc[0]} validation images")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
