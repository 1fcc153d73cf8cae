"""E1 figure: test loss vs training-set size N (log x), mean +- std over seeds."""

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
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = t[t["dataset"] == ds]
        for model, g in part.groupby("model"):
            s = g.groupby("train_size")["test_loss_mean"].agg(["mean", "std"]).fillna(0).reset_index()
            ax.errorbar(s["train_size"], s["mean"], yerr=s["std"], marker="o", capsize=3, label=model,
                        color=plotstyle.COLORS.get(model))
        ax.set_xscale("log")
        ax.set_xlabel("training-set size N (images)")
        ax.set_ylabel(plotstyle.loss_label(ds, "test loss"))
        n_seeds = part["seed"].nunique()
        ax.set_title(f"{ds}: E1, {int(part['steps'].iloc[0])} steps, mean ± std over {n_seeds} seed(s)")
        ax.legend()
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
