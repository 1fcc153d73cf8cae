"""E7 figure: t-SNE of latents coloured by class, one row of panels per dataset, one panel per model."""

import sys

import pandas as pd
from matplotlib.lines import Line2D

import plotstyle
from plotstyle import plt

SPLIT_NAMES = {"train": "training", "test": "test"}
CMAP = plt.get_cmap("tab10")


def split_words(t: pd.DataFrame) -> str:
    """'training', 'test' or 'training and test': the splits the latents come from (test if no `split` column)."""
    if "split" not in t:
        return "test"
    return " and ".join(SPLIT_NAMES.get(s, str(s)) for s in sorted(t["split"].unique(), reverse=True))


def class_legend(subfig, dataset: str) -> None:
    """One legend of the ten class names with their colours, right of the subfigure's panels."""
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, color=CMAP(i), label=plotstyle.class_name(dataset, i))
        for i in range(10)
    ]
    subfig.legend(handles=handles, loc="outside right upper", title="class", frameon=False)


def panel(ax, g: pd.DataFrame, model: str) -> None:
    """Scatter of one run's embedded latents g (rows with tsne_x, tsne_y, label), coloured by class."""
    ax.scatter(g["tsne_x"], g["tsne_y"], c=CMAP(g["label"].to_numpy() % 10), s=4, linewidths=0)
    title = f"{plotstyle.model_label(model)}\nN = {g['train_size'].iloc[0]}, {len(g)} latents"
    ax.set_title(title, fontsize=9, color=plotstyle.COLORS.get(model, "black"))
    ax.set_xlabel("t-SNE 1 (arbitrary units)")
    ax.set_ylabel("t-SNE 2 (arbitrary units)")


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    order = list(plotstyle.DATASET_NAMES)
    datasets = sorted(t["dataset"].unique(), key=lambda d: (order.index(d) if d in order else len(order), d))
    n_cols = t.groupby("dataset")["model"].nunique().max()
    fig = plt.figure(figsize=(3.2 * n_cols + 1.6, 3.4 * len(datasets) + 0.4), layout="constrained")
    subfigs = fig.subfigures(len(datasets), 1, squeeze=False)[:, 0]
    for subfig, ds in zip(subfigs, datasets, strict=True):
        groups = list(t[t["dataset"] == ds].groupby("model", sort=True))
        axes = subfig.subplots(1, n_cols, squeeze=False)[0]
        for ax, (model, g) in zip(axes, groups, strict=True):
            panel(ax, g, model)
        for ax in axes[len(groups) :]:
            ax.set_visible(False)
        subfig.suptitle(plotstyle.dataset_name(ds), fontsize=9)
        class_legend(subfig, ds)
    fig.suptitle(f"t-SNE of {split_words(t)} latents, coloured by class")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
