"""E7 figure: t-SNE of test latents coloured by class, one panel per model."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    groups = list(t.groupby(["dataset", "model"], sort=True))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4), squeeze=False)
    for ax, ((ds, model), g) in zip(axes[0], groups):
        sc = ax.scatter(g["tsne_x"], g["tsne_y"], c=g["label"], cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        ax.set_title(f"{ds}: {model}, N = {g['train_size'].iloc[0]}, {len(g)} test latents", fontsize=8)
        ax.set_xlabel("t-SNE 1 (arbitrary units)")
        ax.set_ylabel("t-SNE 2 (arbitrary units)")
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="class label")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
