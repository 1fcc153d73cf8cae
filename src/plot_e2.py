"""E2 figure: validation loss vs training images seen, and vs wall-clock seconds (log x,
so that the AE's fast curve is not squashed against the axis); mean ± std over seeds.
Dashed vertical lines mark the authors' table points when --points is given."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def label(model: str, rule) -> str:
    return f"{model} ({rule} AMD rule)" if isinstance(rule, str) and rule else plotstyle.model_label(model)


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--points", default=None, help="e2_authors_points.csv (marks the authors' points)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    points = pd.read_csv(a.points) if a.points else None
    datasets = sorted(t["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.8 * len(datasets)), squeeze=False, layout="constrained")
    for row, ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        for (model, rule), g in part.groupby(["model", part["amd_rule"].fillna("")]):
            s = (
                g.groupby("step")
                .agg(
                    images=("images_seen", "first"),
                    loss=("loss_mean", "mean"),
                    std=("loss_mean", "std"),
                    sec=("elapsed_s", "mean"),
                )
                .fillna(0)
            )
            style = "--" if rule == "per-sample" else plotstyle.model_ls(model)
            color = plotstyle.COLORS.get(model)
            timed = s[s["sec"] > 0]  # step 0 has no place on the log time axis
            for ax, x, c in ((row[0], s["images"], s), (row[1], timed["sec"], timed)):
                ax.plot(
                    x,
                    c["loss"],
                    style,
                    marker=".",
                    ms=3,
                    label=f"{label(model, rule)}, {plotstyle.seeds_text(g)}",
                    color=color,
                )
                ax.fill_between(x, c["loss"] - c["std"], c["loss"] + c["std"], alpha=0.2, color=color)
        if points is not None:
            for target in sorted(points.loc[points["dataset"] == ds, "target_images_seen"].unique()):
                row[0].axvline(target, color="grey", lw=0.6, ls=":")
        row[0].set_xlabel("training images seen (images; dotted: the authors' table points)")
        row[1].set_xlabel("training wall-clock time (s, this machine, log scale)")
        row[1].set_xscale("log")
        for ax in row:
            ax.set_ylabel(plotstyle.loss_label(ds, "validation loss"))
            ax.legend()
        where = f"{plotstyle.dataset_name(ds)}, N = {part['train_size'].iloc[0]}"
        row[0].set_title(f"{where}: against images seen")
        row[1].set_title(f"{where}: against wall-clock time")
    n_val = ", ".join(str(n) for n in sorted(t["n_images"].unique()))
    fig.suptitle(f"E2: validation loss during training ({n_val} validation images, mean ± std over seeds)")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
