"""E1 figure: test loss of the best checkpoint vs training-set size N (log x), mean ± std
over seeds; second panel: images seen at the best checkpoint. Runs that hit their step cap
instead of a plateau are drawn with open markers."""

import sys

import pandas as pd
from matplotlib.ticker import ScalarFormatter

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(9, 3.6 * len(datasets)), squeeze=False, layout="constrained")
    for (loss_ax, seen_ax), ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        for model, g in part.groupby("model"):
            color = plotstyle.COLORS.get(model)
            s = g.groupby("train_size").agg(
                loss=("test_loss_mean", "mean"),
                std=("test_loss_mean", "std"),
                seen=("best_images_seen", "mean"),
                seen_std=("best_images_seen", "std"),
                capped=("stop_reason", lambda r: int((r != "plateau").sum())),
            )
            s = s.fillna(0).reset_index()
            for ax, y, err in ((loss_ax, "loss", "std"), (seen_ax, "seen", "seen_std")):
                ax.errorbar(
                    s["train_size"],
                    s[y],
                    yerr=s[err],
                    marker="o",
                    capsize=3,
                    color=color,
                    ls=plotstyle.model_ls(model),
                    label=f"{plotstyle.model_label(model)}, {plotstyle.seeds_text(g)}",
                )
                capped = s[s["capped"] > 0]
                ax.plot(
                    capped["train_size"],
                    capped[y],
                    "o",
                    mfc="white",
                    color=color,
                    ms=9,
                    label=f"{model}: some runs hit the step cap" if len(capped) else None,
                )
        for ax in (loss_ax, seen_ax):
            ax.set_xscale("log")
            ax.set_xticks(sorted(part["train_size"].unique()))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("training-set size N (images)")
            ax.legend()
        seen_ax.set_yscale("log")
        loss_ax.set_ylabel(plotstyle.loss_label(ds, "test loss"))
        seen_ax.set_ylabel("images seen (images, log scale)")
        loss_ax.set_title(f"{plotstyle.dataset_name(ds)}: test loss of the best checkpoint")
        seen_ax.set_title(f"{plotstyle.dataset_name(ds)}: images seen at the best checkpoint")
    fig.suptitle("E1: trained to a validation plateau, mean ± std over seeds")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
